"""EditEnvironment access over the Kubernetes REST API (aiohttp), behind `EnvironmentApi`."""

from __future__ import annotations

import json
import os
import ssl
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode

import aiohttp

from webordinary.contracts.environment import GROUP, PLURAL, VERSION

LIST_PAGE = 200
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class KubeError(Exception):
    """The API answered with an error status."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class Conflict(KubeError):
    """409 (already exists / stale write) or 422 from a failed JSON-patch `test`: re-read."""


class EnvironmentApi(Protocol):
    """The few calls Hermes makes on EditEnvironments."""

    async def get(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    async def create(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]: ...

    async def json_patch(
        self, namespace: str, name: str, ops: list[dict[str, Any]]
    ) -> dict[str, Any]: ...

    async def merge_patch(
        self, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]: ...

    async def list(self, namespace: str) -> list[dict[str, Any]]: ...

    async def close(self) -> None: ...


class HttpEnvironmentApi:
    """aiohttp client for `/apis/webordinary.dev/v1alpha1/namespaces/{ns}/editenvironments`."""

    def __init__(
        self, base_url: str, token: str | None = None, ssl_context: ssl.SSLContext | None = None,
        timeout: float = 15.0, page: int = LIST_PAGE, token_file: Path | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"Accept": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        # Projected service-account tokens rotate (the kubelet rewrites the file): re-read it
        # whenever it changed, so the next call carries the new token.
        self._token_file = token_file
        self._token_stamp: tuple[int, int] | None = None
        self._ssl = ssl_context
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self.page = page

    @classmethod
    def from_settings(cls, url: str | None) -> HttpEnvironmentApi:
        """Explicit URL (local runs), else the in-cluster service account."""
        if url:
            return cls(url)
        host = os.environ.get("KUBERNETES_SERVICE_HOST")
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        if not host:
            raise RuntimeError(
                "no Kubernetes API: set WEBORDINARY_HERMES_KUBE_API_URL or run in a cluster"
            )
        context = ssl.create_default_context(cafile=str(SERVICE_ACCOUNT / "ca.crt"))
        if ":" in host:
            host = f"[{host}]"
        return cls(f"https://{host}:{port}", ssl_context=context,
                   token_file=SERVICE_ACCOUNT / "token")

    def _current_token(self) -> None:
        if self._token_file is None:
            return
        try:
            stat = self._token_file.stat()
        except OSError:
            return
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._token_stamp:
            token = self._token_file.read_text().strip()
            if token:
                self._token_stamp = stamp
                self._headers["Authorization"] = f"Bearer {token}"

    def _path(self, namespace: str, name: str | None = None) -> str:
        path = f"{self.base_url}/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}"
        return f"{path}/{name}" if name else path

    async def _request(
        self, method: str, url: str, body: Any = None, content_type: str = "application/json"
    ) -> dict[str, Any] | None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        self._current_token()
        headers = dict(self._headers)
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body)
        async with self._session.request(
            method, url, data=data, headers=headers, ssl=self._ssl if self._ssl else True
        ) as response:
            text = await response.text()
            if response.status == 404 and method == "GET":
                return None
            if response.status >= 400:
                reason, message = "Error", text[:500]
                try:
                    payload = json.loads(text)
                    reason = str(payload.get("reason") or reason)
                    message = str(payload.get("message") or message)
                except (json.JSONDecodeError, AttributeError):
                    pass
                is_failed_test = response.status == 422 and "test" in message.lower()
                if response.status == 409 or is_failed_test:
                    raise Conflict(response.status, reason, message)
                raise KubeError(response.status, reason, message)
            result: dict[str, Any] = json.loads(text) if text else {}
            return result

    async def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._request("GET", self._path(namespace, name))

    async def create(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self._request("POST", self._path(namespace), body) or {}

    async def json_patch(
        self, namespace: str, name: str, ops: list[dict[str, Any]]
    ) -> dict[str, Any]:
        url = self._path(namespace, name)
        return await self._request("PATCH", url, ops, "application/json-patch+json") or {}

    async def merge_patch(
        self, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        url = self._path(namespace, name)
        return await self._request("PATCH", url, patch, "application/merge-patch+json") or {}

    async def list(self, namespace: str) -> list[dict[str, Any]]:
        """Every EditEnvironment, in pages (`limit`/`continue`): the API server serves a big
        list in parts, and the event loop runs other work between them."""
        items: list[dict[str, Any]] = []
        token = ""
        while True:
            query = urlencode({"limit": self.page, **({"continue": token} if token else {})})
            found = await self._request("GET", f"{self._path(namespace)}?{query}") or {}
            items.extend(found.get("items") or [])
            token = str((found.get("metadata") or {}).get("continue") or "")
            if not token:
                return items

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
