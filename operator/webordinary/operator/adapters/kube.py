"""The operator's Kubernetes client: the shared `webordinary.kube` client, logged in the way
kopf logged in (kopf owns the watch; this client gets, creates, patches and deletes children
and writes status)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

import kopf

from webordinary.kube import Client, Config, KubeError

__all__ = ["SERVICE_ACCOUNT_TOKEN", "KubeClient", "KubeError", "config_from"]

SERVICE_ACCOUNT_TOKEN: Final = "/var/run/secrets/kubernetes.io/serviceaccount/token"


def _text(data: str | bytes | None) -> str | None:
    return data.decode() if isinstance(data, bytes) else data


def _path(path: str | bytes | os.PathLike[str] | os.PathLike[bytes] | None) -> Path | None:
    return Path(os.fsdecode(path)) if path else None


def config_from(info: kopf.ConnectionInfo, token_file: str | None = SERVICE_ACCOUNT_TOKEN
                ) -> Config:
    """kopf's credentials as the shared client's Config; the projected token file (when
    present) is re-read after every rotation."""
    return Config(
        server=info.server, token=info.token, token_file=_path(token_file),
        scheme=info.scheme or "Bearer", username=info.username, password=info.password,
        ca_file=_path(info.ca_path), ca_data=_text(info.ca_data),
        cert_file=_path(info.certificate_path), key_file=_path(info.private_key_path),
        cert_data=_text(info.certificate_data), key_data=_text(info.private_key_data),
        insecure=bool(info.insecure),
    )


class KubeClient(Client):
    """The shared client, built from kopf's ConnectionInfo."""

    def __init__(self, info: kopf.ConnectionInfo, *, connections: int = 64,
                 token_file: str | None = SERVICE_ACCOUNT_TOKEN) -> None:
        super().__init__(config_from(info, token_file), connections=connections)
