"""The operator's Kubernetes client: the shared `webordinary.kube` client, logged in the way
kopf logged in (kopf owns the EditEnvironments' watch; this client gets, creates, patches and
deletes children, writes status, and watches the children: childwatch). Its requests go over
the operator's lean HTTP/1.1 pool (`http1`): at a thousand simultaneous wakes or sleep
deadlines, aiohttp's client CPU per call was a third of the operator's (watches stay on
aiohttp: a few long-lived streams)."""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Final
from urllib.parse import urlencode

import kopf

from webordinary.kube import Client, Config, KubeError
from webordinary.operator.adapters.http1 import Pool, Unreachable, request_head

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
        verify = self.config.ssl_context()
        context: ssl.SSLContext | None = verify if isinstance(verify, ssl.SSLContext) else None
        if verify is False and self.server.startswith("https:"):
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        # aiohttp's per-socket read timeout, here per answer.
        self._pool = Pool(self.server, limit=connections, ssl_context=context,
                          timeout=self._timeout)

    async def _send(self, method: str, path: str, data: bytes | None, content_type: str | None,
                    params: Mapping[str, str] | None) -> tuple[int, bytes]:
        if self._closed:
            raise KubeError(0, "Closed", "the client is closed (shutting down)")
        target = self._pool.prefix + path + (f"?{urlencode(params)}" if params else "")
        body = data if data is not None else b""
        headers = self._headers(content_type)
        sized = data is not None or method in ("POST", "PUT", "PATCH")
        head = request_head(method, target, {"host": self._pool.host, **headers},
                            len(body) if sized else None)
        try:
            answer = await self._pool.request(head, body)
        except Unreachable as error:
            raise KubeError(0, "Unreachable", f"{method} {path}: {error}") from error
        return answer.status, answer.body

    async def close(self) -> None:
        await super().close()
        await self._pool.close()
