"""Resumable watches: list once, then follow the events from the last resourceVersion seen.

Bookmarks keep that version fresh, so a dropped stream resumes without a list; only a version
the server no longer has (410) lists again, and then the caller's view is replaced, not merged,
so deletions missed meanwhile count.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from webordinary.kube.client import Client
from webordinary.kube.errors import KubeError

log = logging.getLogger(__name__)


@dataclass
class Feed:
    """Where one watched collection's lists and events go."""

    path: str
    params: Mapping[str, str]
    replace: Callable[[list[Any]], None]
    upsert: Callable[[Any], None]
    delete: Callable[[Any], None]
    synced: Callable[[], None]


async def follow(client: Client, feed: Feed, ready: asyncio.Event,
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
        except KubeError as error:
            if error.status == 410:
                log.info("watch of %s expired; listing again", feed.path)
                version = None
                continue
            log.warning("watch of %s interrupted (%s); resuming in %.1fs", feed.path, error, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, backoff_max)


async def run_feeds(client: Client, feeds: list[Feed],
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
