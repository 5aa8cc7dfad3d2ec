"""The operator's Kubernetes client talks to whatever kopf logged in to, with the same
credentials, and follows the projected token file (rotation: tests/integration/kube)."""

from __future__ import annotations

from pathlib import Path

import kopf

from webordinary.operator.adapters.kube import SERVICE_ACCOUNT_TOKEN, KubeClient, config_from


def test_kopf_credentials_become_the_shared_config() -> None:
    info = kopf.ConnectionInfo(
        server="https://10.0.0.1:443", ca_path=b"/ca.crt", scheme="Bearer", token="t0",
        certificate_data=b"CERT", private_key_data=b"KEY", insecure=False)
    config = config_from(info)
    assert (config.server, config.token, config.scheme) == ("https://10.0.0.1:443", "t0", "Bearer")
    assert config.ca_file == Path("/ca.crt")
    assert (config.cert_data, config.key_data) == ("CERT", "KEY")
    assert config.token_file == Path(SERVICE_ACCOUNT_TOKEN)
    assert config_from(info, token_file=None).token_file is None


def test_basic_auth_and_insecure_local_logins() -> None:
    info = kopf.ConnectionInfo(server="http://127.0.0.1:1/", username="u", password="p",
                               insecure=True)
    client = KubeClient(info)
    assert client.server == "http://127.0.0.1:1"
    assert (client.config.username, client.config.password, client.config.insecure) == (
        "u", "p", True)
