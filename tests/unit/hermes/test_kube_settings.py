"""Where Hermes' EditEnvironment client connects: the configured URL, else the in-cluster
service account (token file re-read on rotation), else a clear error naming the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from webordinary.hermes.adapters.kube import LIST_PAGE, KubeEnvironments


def test_an_explicit_url_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    api = KubeEnvironments.from_settings("http://127.0.0.1:8001/")
    assert api.client.server == "http://127.0.0.1:8001"
    assert api.page == LIST_PAGE


def test_in_cluster_reads_the_projected_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    config = KubeEnvironments.from_settings(None).client.config
    assert config.server == "https://10.0.0.1:443"
    assert config.token_file == Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


def test_nowhere_to_connect_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(RuntimeError, match="WEBORDINARY_HERMES_KUBE_API_URL"):
        KubeEnvironments.from_settings(None)
