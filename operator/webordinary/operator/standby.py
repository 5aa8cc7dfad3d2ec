"""Whether this replica may act, from kopf's peering record.

kopf pauses a standby's handlers and timers, but not the operator's own clocks (the sleep
deadlines and the wake poller): they ask `Standby.active` first. kopf decides on the same
record (peering.process_peering_event): paused while a live peer has a higher priority, or
another live peer the same one. A replica that becomes active again re-arms every
environment it knows at once (`on_active(True)`), not at its next drift tick; a first activation
runs only what was parked (kopf's resume handlers arm the rest).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from webordinary.contracts.activity import parse_timestamp
from webordinary.operator.adapters.kube import KubeClient, KubeError
from webordinary.operator.tasks import ended

log = logging.getLogger(__name__)


def is_active(status: Mapping[str, Any], priority: int, now: datetime) -> bool:
    """kopf's rule over the peering record's status (identity -> priority, lastseen, lifetime);
    our own entry is the one with our priority."""
    live: list[int] = []
    for peer in status.values():
        if not isinstance(peer, Mapping):
            continue
        seen = parse_timestamp(peer.get("lastseen")) or now
        if seen + timedelta(seconds=int(peer.get("lifetime") or 60)) <= now:
            continue
        live.append(int(peer.get("priority") or 0))
    return not any(p > priority for p in live) and live.count(priority) <= 1


def record_paths(name: str, namespaces: list[str]) -> list[str]:
    """The peering records kopf uses: one cluster-wide, or one per watched namespace."""
    if not namespaces:
        return [f"/apis/kopf.dev/v1/clusterkopfpeerings/{name}"]
    return [f"/apis/kopf.dev/v1/namespaces/{ns}/kopfpeerings/{name}" for ns in namespaces]


class Standby:
    """`active` is True standalone; with peering, it follows the records (read every
    `interval` seconds) and starts False until the first read."""

    def __init__(self, peering_name: str | None, namespaces: list[str], interval: float,
                 on_active: Callable[[bool], Awaitable[None]]) -> None:
        self.active = peering_name is None
        self._paths = record_paths(peering_name, namespaces) if peering_name else []
        self._interval = interval
        self._on_active = on_active
        self._task: asyncio.Task[None] | None = None
        self._was_active = False
        self._changed = asyncio.Event()  # set (and replaced) whenever `active` changes

    async def until(self, active: bool) -> None:
        """Return once `self.active` is `active` (the child watches run only while it is)."""
        while self.active != active:
            await self._changed.wait()

    def start(self, client: Callable[[], KubeClient], priority: Callable[[], int]) -> None:
        if self._paths and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(client, priority))

    async def stop(self) -> None:
        await ended(self._task)
        self._task = None

    async def check(self, kube: KubeClient, priority: int) -> None:
        now = datetime.now(UTC)
        active = True
        for path in self._paths:
            record = await kube.request("GET", path)
            if record is not None and not is_active(record.get("status") or {}, priority, now):
                active = False
        if active == self.active:
            return
        self.active = active
        self._changed.set()
        self._changed = asyncio.Event()
        log.info("peering: %s", "active" if active else "paused (a peer is active)")
        if active:
            await self._on_active(self._was_active)  # after a pause our clocks may be stale
            self._was_active = True

    async def _loop(self, client: Callable[[], KubeClient], priority: Callable[[], int]) -> None:
        while True:
            try:
                kube = client()
            except RuntimeError:  # not logged in yet
                await asyncio.sleep(0.2)
                continue
            try:
                await self.check(kube, priority())
            except KubeError as error:
                log.warning("peering record not readable: %s", error)
            await asyncio.sleep(self._interval)
