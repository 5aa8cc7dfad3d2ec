"""A thin Kubernetes API client: paged lists, resumable watches, annotation merge patches.

The gateway reads through watches only (no API call per request). A watch resumes from the
last resourceVersion it saw (bookmarks keep that fresh); only an expired version (410) makes it
list again, and then the table is replaced, not merged, so deletions missed meanwhile count.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiohttp

log = logging.getLogger(__name__)

SERVICE_ACCOUNT_DIR: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount")
LIST_PAGE: Final = 500
WATCH_TIMEOUT_SECONDS: Final = 290
TOKEN_REFRESH_SECONDS: Final = 60.0


class KubeError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class Expired(Exception):
    """The watch's resourceVersion is too old (410): list again."""


class KubeClient:
    """Talks to the API server: in-cluster (ServiceAccount token, CA) or a local URL."""

    def __init__(self, base_url: str, *, token_file: Path | None = None,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._token_file = token_file
        self._token: str | None = None
        self._token_read = 0.0
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_settings(cls, kube_api_url: str | None) -> KubeClient:
        if kube_api_url:
            return cls(kube_api_url)
        host = os.environ.get("KUBERNETES_SERVICE_HOST")
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        if not host:
            raise RuntimeError("not in a cluster: set WEBORDINARY_GATEWAY_KUBE_API_URL")
        context = ssl.create_default_context(cafile=str(SERVICE_ACCOUNT_DIR / "ca.crt"))
        host = f"[{host}]" if ":" in host else host
        return cls(f"https://{host}:{port}", token_file=SERVICE_ACCOUNT_DIR / "token",
                   ssl_context=context)

    async def open(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, connect=10, sock_read=None))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _headers(self, content_type: str | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        if self._token_file is not None:
            # Bound ServiceAccount tokens rotate: read the projected file again now and then.
            if self._token is None or time.monotonic() - self._token_read > TOKEN_REFRESH_SECONDS:
                self._token = self._token_file.read_text().strip()
                self._token_read = time.monotonic()
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("KubeClient.open() was not called")
        return self._session

    async def list_all(self, path: str, params: Mapping[str, str]) -> tuple[list[Any], str]:
        """Every item (paged by `limit`/`continue`) and the list's resourceVersion."""
        items: list[Any] = []
        query = {**params, "limit": str(LIST_PAGE)}
        while True:
            async with self.session.get(self.base_url + path, params=query,
                                        headers=self._headers(), ssl=self._ssl,
                                        timeout=aiohttp.ClientTimeout(total=60)) as response:
                if response.status >= 400:
                    raise KubeError(response.status, await response.text())
                data = await response.json()
            items.extend(data.get("items") or [])
            meta = data.get("metadata") or {}
            token = meta.get("continue")
            if not token:
                return items, str(meta.get("resourceVersion") or "")
            query = {**params, "limit": str(LIST_PAGE), "continue": token}

    async def watch(self, path: str, params: Mapping[str, str],
                    resource_version: str) -> AsyncIterator[dict[str, Any]]:
        """Watch events after `resource_version` until the server ends the stream."""
        query = {**params, "watch": "true", "resourceVersion": resource_version,
                 "allowWatchBookmarks": "true", "timeoutSeconds": str(WATCH_TIMEOUT_SECONDS)}
        timeout = aiohttp.ClientTimeout(total=None, connect=10,
                                        sock_read=WATCH_TIMEOUT_SECONDS + 30)
        async with self.session.get(self.base_url + path, params=query, headers=self._headers(),
                                    ssl=self._ssl, timeout=timeout) as response:
            if response.status == 410:
                raise Expired()
            if response.status >= 400:
                raise KubeError(response.status, await response.text())
            buffer = b""
            async for chunk in response.content.iter_any():
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)

    async def merge_patch(self, path: str, body: Mapping[str, Any]) -> None:
        async with self.session.patch(
            self.base_url + path, data=json.dumps(body),
            headers=self._headers("application/merge-patch+json"), ssl=self._ssl,
            timeout=aiohttp.ClientTimeout(total=10),
        ) as response:
            if response.status >= 400:
                raise KubeError(response.status, await response.text())


@dataclass
class Feed:
    """Where one watched kind's lists and events go."""

    path: str
    params: Mapping[str, str]
    replace: Callable[[list[Any]], None]
    upsert: Callable[[Any], None]
    delete: Callable[[Any], None]
    synced: Callable[[], None]


async def follow(client: KubeClient, feed: Feed, ready: asyncio.Event,
                 backoff_max: float = 10.0) -> None:
    """List once, then watch forever, resuming from the last resourceVersion seen."""
    version: str | None = None
    delay = 0.2
    while True:
        try:
            if version is None:
                items, version = await client.list_all(feed.path, feed.params)
                feed.replace(items)
                ready.set()
            async for event in client.watch(feed.path, feed.params, version):
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise Expired()
                    raise KubeError(int(obj.get("code") or 500), str(obj.get("message")))
                new_version = (obj.get("metadata") or {}).get("resourceVersion")
                if new_version:
                    version = str(new_version)
                if kind == "BOOKMARK":
                    feed.synced()
                elif kind == "DELETED":
                    feed.delete(obj)
                elif kind in ("ADDED", "MODIFIED"):
                    feed.upsert(obj)
                delay = 0.2
        except Expired:
            log.info("watch of %s expired; listing again", feed.path)
            version = None
        except (aiohttp.ClientError, TimeoutError, KubeError, ValueError) as exc:
            log.warning("watch of %s interrupted (%s); resuming in %.1fs", feed.path, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, backoff_max)


async def run_feeds(client: KubeClient, feeds: list[Feed],
                    on_ready: Callable[[], Awaitable[None]] | None = None) -> None:
    """Follow every feed; call `on_ready` once all of them have listed once."""
    events = [asyncio.Event() for _ in feeds]
    tasks = [asyncio.create_task(follow(client, feed, event))
             for feed, event in zip(feeds, events, strict=True)]
    try:
        if on_ready is not None:
            await asyncio.gather(*(event.wait() for event in events))
            await on_ready()
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
