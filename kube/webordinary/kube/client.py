"""Get, list (paged), create, patch (merge, JSON, status), delete and watch over one pooled
aiohttp session. Objects stay plain dicts: no model classes between the JSON and the caller."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

import aiohttp
import orjson

from webordinary.kube.config import Config
from webordinary.kube.errors import KubeError

JSON: Final = "application/json"
MERGE_PATCH: Final = "application/merge-patch+json"
JSON_PATCH: Final = "application/json-patch+json"
LIST_PAGE: Final = 500
WATCH_TIMEOUT_SECONDS: Final = 290
# How often the token file is looked at (a stat): the kubelet writes a rotated token long before
# the old one expires, and a 401 reads the file again at once. A stat per request was ~7 % of
# the operator's CPU at a thousand sleep deadlines.
TOKEN_RECHECK_SECONDS: Final = 1.0

# (module-level: inside Client, `list` is the method)
Objects = list[dict[str, Any]]
PatchOps = list[dict[str, Any]]


class Kind(Protocol):
    """Where a kind lives in the API: `/api/v1` or `/apis/{group}/{version}`, and its plural."""

    @property
    def group_path(self) -> str: ...

    @property
    def plural(self) -> str: ...


@dataclass(frozen=True)
class Resource:
    """A kind by apiVersion, kind and plural (satisfies `Kind`)."""

    api_version: str
    kind: str
    plural: str

    @property
    def group_path(self) -> str:
        return "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"


def resource_path(kind: Kind, namespace: str | None, name: str | None = None,
                  sub: str | None = None) -> str:
    """`{group}/namespaces/{ns}/{plural}[/{name}[/{sub}]]`; no namespace: every namespace."""
    url = kind.group_path + (f"/namespaces/{namespace}" if namespace else "") + f"/{kind.plural}"
    if name:
        url += f"/{name}"
    if sub:
        url += f"/{sub}"
    return url


class Client:
    """One API server, one connection pool.

    The token file (if any) is looked at before every call and read again when it changed, so
    the call after a rotation carries the new token; a 401 makes it read the file once more and
    retry. Reads and deletes of something missing answer None; every other failure, including
    an unreachable server, is a KubeError.
    """

    def __init__(self, config: Config, *, connections: int = 64,
                 timeout: float = 30.0) -> None:
        self.config = config
        self.server = config.server.rstrip("/")
        self._token = config.token
        self._token_stamp: tuple[int, int, int] | None = None
        self._token_checked = float("-inf")  # monotonic time of the last look at the file
        self._connections = connections
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    # --- connection -------------------------------------------------------------------------

    async def _open(self) -> aiohttp.ClientSession:
        if self._closed:
            raise KubeError(0, "Closed", "the client is closed (shutting down)")
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connections,
                                               ssl=self.config.ssl_context()),
                # Per socket, not total: under a burst, waiting for one of the pooled
                # connections is not the API server being slow.
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10,
                                              sock_read=self._timeout),
            )
        return self._session

    async def close(self) -> None:
        self._closed = True
        if self._session is not None:
            await self._session.close()

    def _read_token(self, force: bool = False) -> bool:
        """Take the token file's content when it changed (or `force`); True if it did. Looked
        at once per TOKEN_RECHECK_SECONDS at most, unless forced."""
        path = self.config.token_file
        if path is None:
            return False
        now = time.monotonic()
        if not force and now - self._token_checked < TOKEN_RECHECK_SECONDS:
            return False
        self._token_checked = now
        try:
            stat = os.stat(path)
        except OSError:
            return False
        stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if stamp == self._token_stamp and not force:
            return False
        try:
            token = path.read_text().strip()
        except OSError:
            return False
        if not token:
            return False
        self._token_stamp = stamp
        changed, self._token = token != self._token, token
        return changed

    def _headers(self, content_type: str | None) -> dict[str, str]:
        self._read_token()
        headers = {"Accept": JSON}
        if content_type:
            headers["Content-Type"] = content_type
        config = self.config
        if self._token:
            headers["Authorization"] = f"{config.scheme} {self._token}"
        elif config.username and config.password:
            basic = aiohttp.BasicAuth(config.username, config.password)
            headers["Authorization"] = basic.encode()
        return headers

    # --- the one request ----------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content_type: str = JSON,
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any] | None:
        """One call; None for 404 on GET and DELETE, KubeError for every other failure."""
        # orjson: a Deployment's 9 KB as a request and again as the answer, for every child
        # created, cost the operator ~0.3 ms through the json module (a twentieth of its CPU
        # per environment in a creation burst)
        data = None if body is None else orjson.dumps(body)
        for attempt in range(2):
            status, payload = await self._send(
                method, path, data, content_type if data is not None else None, params)
            if status == 401 and attempt == 0 and self._read_token(force=True):
                continue
            if status == 404 and method in ("GET", "DELETE"):
                return None
            if status >= 400:
                raise KubeError.from_response(status, payload)
            try:
                result = orjson.loads(payload) if payload else {}
            except ValueError as error:
                raise KubeError(0, "InvalidResponse", f"{method} {path}: {error}") from error
            return result if isinstance(result, dict) else {}
        raise AssertionError("unreachable")

    async def _send(self, method: str, path: str, data: bytes | None, content_type: str | None,
                    params: Mapping[str, str] | None) -> tuple[int, bytes]:
        """One HTTP exchange: the status and the body; KubeError when there is no answer."""
        session = await self._open()
        try:
            async with session.request(method, self.server + path, data=data, params=params,
                                       headers=self._headers(content_type)) as response:
                return response.status, await response.read()
        except (aiohttp.ClientError, TimeoutError) as error:
            raise KubeError(0, "Unreachable", f"{method} {path}: {error!r}") from error

    # --- verbs over kinds ---------------------------------------------------------------------

    path = staticmethod(resource_path)

    async def get(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        return await self.request("GET", resource_path(kind, namespace, name))

    async def list(self, kind: Kind, namespace: str | None, selector: str | None = None, *,
                   page: int = LIST_PAGE) -> Objects:
        """Every object of a kind (matching a label selector), read in pages."""
        params = {"labelSelector": selector} if selector else {}
        items, _ = await self.list_all(resource_path(kind, namespace), params, page)
        return items

    async def list_all(self, path: str, params: Mapping[str, str] | None = None,
                       page: int = LIST_PAGE) -> tuple[Objects, str]:
        """Every item, in pages of `page` (`limit`/`continue`: the server answers a big list in
        parts and the event loop runs other work between them), and the resourceVersion to
        watch from."""
        items: Objects = []
        query = {**(params or {}), "limit": str(page)}
        while True:
            found = await self.request("GET", path, params=query) or {}
            items.extend(found.get("items") or [])
            meta = found.get("metadata") or {}
            token = meta.get("continue")
            if not token:
                return items, str(meta.get("resourceVersion") or "")
            query = {**(params or {}), "limit": str(page), "continue": str(token)}

    async def create(self, kind: Kind, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self.request("POST", resource_path(kind, namespace), body=body) or {}

    async def patch(self, kind: Kind, namespace: str, name: str, body: dict[str, Any], *,
                    subresource: str | None = None) -> dict[str, Any]:
        """A JSON merge patch (RFC 7386), of the object or a subresource such as `status`."""
        path = resource_path(kind, namespace, name, subresource)
        return await self.request("PATCH", path, body=body, content_type=MERGE_PATCH) or {}

    merge_patch = patch

    async def json_patch(self, kind: Kind, namespace: str, name: str,
                         ops: PatchOps, *,
                         subresource: str | None = None) -> dict[str, Any]:
        """A JSON patch (RFC 6902); a failed `test` op raises Conflict."""
        path = resource_path(kind, namespace, name, subresource)
        return await self.request("PATCH", path, body=ops, content_type=JSON_PATCH) or {}

    async def delete(self, kind: Kind, namespace: str, name: str) -> bool:
        """True when something was deleted, False when it was already gone."""
        result = await self.request(
            "DELETE", resource_path(kind, namespace, name),
            body={"kind": "DeleteOptions", "apiVersion": "v1",
                  "propagationPolicy": "Background"},
        )
        return result is not None

    # --- watch --------------------------------------------------------------------------------

    async def watch(self, path: str, params: Mapping[str, str] | None, resource_version: str,
                    timeout_seconds: int = WATCH_TIMEOUT_SECONDS
                    ) -> AsyncIterator[dict[str, Any]]:
        """Events after `resource_version` (bookmarks included) until the server ends the
        stream. A version too old to resume from raises KubeError 410: list again."""
        session = await self._open()
        query = {**(params or {}), "watch": "true", "resourceVersion": resource_version,
                 "allowWatchBookmarks": "true", "timeoutSeconds": str(timeout_seconds)}
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10,
                                        sock_read=timeout_seconds + 30)
        try:
            async with session.get(self.server + path, params=query,
                                   headers=self._headers(None), timeout=timeout) as response:
                if response.status >= 400:
                    if response.status == 401:
                        self._read_token(force=True)
                    raise KubeError.from_response(response.status, await response.read())
                buffer = b""
                async for chunk in response.content.iter_any():
                    buffer += chunk
                    if b"\n" not in chunk:
                        continue
                    # one split per chunk: a chunk of a thousand events split line by line
                    # copied the rest of it for every line
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        if not line.strip():
                            continue
                        event: dict[str, Any] = orjson.loads(line)
                        if event.get("type") == "ERROR":
                            status = event.get("object") or {}
                            raise KubeError(int(status.get("code") or 500),
                                            str(status.get("reason") or "Error"),
                                            str(status.get("message") or ""))
                        yield event
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            raise KubeError(0, "Unreachable", f"watch {path}: {error!r}") from error
