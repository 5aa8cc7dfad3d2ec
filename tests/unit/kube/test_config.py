"""Where the shared client connects and with what credentials, from each source."""

from __future__ import annotations

import base64
import ssl
from pathlib import Path

import pytest
import yaml

from webordinary.kube import Config, KubeError
from webordinary.kube.errors import Conflict


def test_in_cluster_uses_the_service_account(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "6443")
    config = Config.in_cluster(tmp_path)
    assert config.server == "https://[fd00::1]:6443"
    assert (config.token_file, config.ca_file) == (tmp_path / "token", tmp_path / "ca.crt")
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    with pytest.raises(RuntimeError, match="not in a cluster"):
        Config.in_cluster(tmp_path)


def kubeconfig(tmp_path: Path, user: dict[str, object]) -> Path:
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump({
        "current-context": "kind",
        "contexts": [{"name": "other", "context": {"cluster": "x", "user": "x"}},
                     {"name": "kind", "context": {"cluster": "kind", "user": "me"}}],
        "clusters": [{"name": "kind", "cluster": {
            "server": "https://127.0.0.1:6443/", "certificate-authority": "ca.pem",
            "insecure-skip-tls-verify": False}}],
        "users": [{"name": "me", "user": user}],
    }))
    return path


def test_kubeconfig_current_context(tmp_path: Path) -> None:
    config = Config.from_kubeconfig(kubeconfig(tmp_path, {"tokenFile": "token"}))
    assert config.server == "https://127.0.0.1:6443"
    assert config.ca_file == tmp_path / "ca.pem"
    assert config.token_file == tmp_path / "token"
    cert = base64.b64encode(b"-----BEGIN CERTIFICATE-----").decode()
    config = Config.from_kubeconfig(kubeconfig(tmp_path, {
        "client-certificate-data": cert, "client-key-data": cert}))
    assert (config.cert_data, config.token) == (cert, None)


def test_kubeconfig_with_a_credential_plugin_is_refused_by_name(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path, {"exec": {"command": "aws"}})
    with pytest.raises(RuntimeError, match="'me' needs a credential plugin"):
        Config.from_kubeconfig(path)
    with pytest.raises(RuntimeError, match="no context named 'nope'"):
        Config.from_kubeconfig(path, context="nope")


def test_tls_settings() -> None:
    assert Config.from_url("http://127.0.0.1:1").ssl_context() is True
    assert Config(server="https://x", insecure=True).ssl_context() is False
    assert isinstance(Config(server="https://x").ssl_context(), ssl.SSLContext)


@pytest.mark.parametrize(("status", "body", "kind", "transient"), [
    (409, b'{"reason": "AlreadyExists", "message": "exists"}', Conflict, True),
    (422, b'{"reason": "Invalid", "message": "the test operation failed"}', Conflict, False),
    (422, b'{"reason": "Invalid", "message": "spec.x: Invalid value"}', KubeError, False),
    (429, b"slow down", KubeError, True),
    (503, b"<html>", KubeError, True),
    (403, b'{"reason": "Forbidden", "message": "no"}', KubeError, False),
])
def test_errors_from_answers(status: int, body: bytes, kind: type[KubeError],
                             transient: bool) -> None:
    error = KubeError.from_response(status, body)
    assert type(error) is kind
    assert error.transient is transient
    assert error.status == status
    assert error.reason
    assert error.message
