"""Where the gateway's Kubernetes client connects: the configured URL, else the in-cluster
service account (token file re-read on rotation), else a clear error naming the setting."""

from __future__ import annotations

import pytest

from webordinary.gateway.app import kube_client


def test_the_gateway_connects_to_the_url_or_the_service_account(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(RuntimeError, match="WEBORDINARY_GATEWAY_KUBE_API_URL"):
        kube_client(None)
    assert kube_client("http://127.0.0.1:8001").server == "http://127.0.0.1:8001"
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)
    config = kube_client(None).config
    assert config.server == "https://[fd00::1]:443"
    assert config.token_file is not None, "the projected token, re-read on rotation"
