"""A thin async Kubernetes REST client for the operator's own reads and writes.

kopf owns the watch; this client only gets, creates, patches and deletes children and writes
status. It takes kopf's ConnectionInfo, so it talks to whatever kopf logged in to.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import ssl
import tempfile
from typing import Any, Final

import aiohttp
import kopf

from webordinary.operator.builders import Kind

MERGE_PATCH: Final = "application/merge-patch+json"
SERVICE_ACCOUNT_TOKEN: Final = "/var/run/secrets/kubernetes.io/serviceaccount/token"


class KubeError(Exception):
    """An API answer other than success; `transient` ones are worth retrying."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def transient(self) -> bool:
        return self.status in (409, 429) or self.status >= 500 or self.status == 0


def _ssl_context(info: kopf.ConnectionInfo) -> ssl.SSLContext | bool:
    if info.insecure:
        return False
    context = ssl.create_default_context()
    if info.ca_path:
        context.load_verify_locations(cafile=os.fsdecode(info.ca_path))
    elif info.ca_data:
        data = info.ca_data.decode() if isinstance(info.ca_data, bytes) else info.ca_data
        if "BEGIN CERTIFICATE" not in data:
            data = base64.b64decode(data).decode()
        context.load_verify_locations(cadata=data)
    cert, key = info.certificate_path, info.private_key_path
    if info.certificate_data and info.private_key_data:
        cert, key = _to_file(info.certificate_data), _to_file(info.private_key_data)
    if cert and key:
        context.load_cert_chain(os.fsdecode(cert), os.fsdecode(key))
    return context


def _to_file(data: str | bytes) -> str:
    raw = data.encode() if isinstance(data, str) else data
    if b"-----BEGIN" not in raw:
        raw = base64.b64decode(raw)
    handle = tempfile.NamedTemporaryFile(delete=False, suffix=".pem")  # noqa: SIM115
    with handle:
        handle.write(raw)
    return handle.name


class KubeClient:
    """get/create/patch/delete over one pooled aiohttp session.

    Projected service-account tokens rotate (the kubelet rewrites the file, hourly by default):
    the token file is re-read whenever it changed, so the next call carries the new token.
    """

    def __init__(self, info: kopf.ConnectionInfo, *, connections: int = 64,
                 token_file: str | None = SERVICE_ACCOUNT_TOKEN) -> None:
        self.server = info.server.rstrip("/")
        self._info = info
        self._token_file = token_file
        self._token_stamp: tuple[int, int] | None = None
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    def _current_token(self) -> None:
        """Take the token file's content when the file changed since the last look."""
        if not self._token_file:
            return
        try:
            stat = os.stat(self._token_file)
        except OSError:
            return
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._token_stamp:
            self._token_stamp = stamp
            self._refresh_token()

    def _headers(self) -> dict[str, str]:
        self._current_token()
        info = self._info
        if info.token:
            return {"Authorization": f"{info.scheme or 'Bearer'} {info.token}"}
        if info.username and info.password:
            basic = base64.b64encode(f"{info.username}:{info.password}".encode()).decode()
            return {"Authorization": f"Basic {basic}"}
        return {}

    async def _open(self) -> aiohttp.ClientSession:
        if self._closed:
            raise KubeError(0, "Closed", "the operator is shutting down")
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._connections, ssl=_ssl_context(self._info)
                ),
                # Per socket, not total: under a burst, waiting for one of the pooled
                # connections is not the API server being slow (a total timeout counted it).
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=30),
            )
        return self._session

    async def close(self) -> None:
        self._closed = True
        if self._session is not None:
            await self._session.close()

    def _refresh_token(self) -> bool:
        """Re-read the token file (also after a 401); True when the token changed."""
        if not self._token_file or not os.path.exists(self._token_file):
            return False
        with open(self._token_file, encoding="utf-8") as handle:
            token = handle.read().strip()
        if not token:
            return False
        changed = token != self._info.token
        self._info = dataclasses.replace(self._info, token=token)
        return changed

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content_type: str = "application/json",
        params: dict[str, str] | None = None,
    ) -> dict[str, Any] | None:
        """One API call; None for 404 on reads and deletes, KubeError for other failures."""
        session = await self._open()
        for attempt in range(2):
            try:
                async with session.request(
                    method, self.server + path, json=body, params=params,
                    headers={**self._headers(), "Content-Type": content_type},
                ) as response:
                    if response.status == 401 and attempt == 0 and self._refresh_token():
                        continue
                    if response.status == 404 and method in ("GET", "DELETE"):
                        return None
                    payload = await response.json(content_type=None)
                    if response.status >= 400:
                        payload = payload if isinstance(payload, dict) else {}
                        raise KubeError(response.status, str(payload.get("reason", "")),
                                        str(payload.get("message", payload)))
                    return payload if isinstance(payload, dict) else {}
            except (aiohttp.ClientError, TimeoutError) as error:
                raise KubeError(0, "Unreachable", f"{method} {path}: {error!r}") from error
        raise KubeError(401, "Unauthorized", f"{method} {path}")

    @staticmethod
    def path(kind: Kind, namespace: str, name: str | None = None, sub: str | None = None) -> str:
        url = f"{kind.group_path}/namespaces/{namespace}/{kind.plural}"
        if name:
            url += f"/{name}"
        if sub:
            url += f"/{sub}"
        return url

    async def get(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        return await self.request("GET", self.path(kind, namespace, name))

    async def list(self, kind: Kind, namespace: str, selector: str) -> list[dict[str, Any]]:
        """Objects of a kind in a namespace matching a label selector."""
        result = await self.request("GET", self.path(kind, namespace),
                                    params={"labelSelector": selector})
        return list((result or {}).get("items") or [])

    async def create(self, kind: Kind, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        result = await self.request("POST", self.path(kind, namespace), body=body)
        return result or {}

    async def patch(
        self,
        kind: Kind,
        namespace: str,
        name: str,
        body: dict[str, Any],
        *,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        result = await self.request(
            "PATCH", self.path(kind, namespace, name, subresource), body=body,
            content_type=MERGE_PATCH,
        )
        return result or {}

    async def delete(self, kind: Kind, namespace: str, name: str) -> bool:
        """True when something was deleted, False when it was already gone."""
        result = await self.request(
            "DELETE", self.path(kind, namespace, name),
            body={"kind": "DeleteOptions", "apiVersion": "v1",
                  "propagationPolicy": "Background"},
        )
        return result is not None
