"""Which environments' output queues and DLQs are polled, and the polling itself.

Design (see hermes/README.md, "Results at scale"): one asyncio task per environment that can
produce results, long-polling its output queue over the async SQS client (a pending request,
not a thread), and one task sweeping those environments' DLQs every `dlqIntervalSeconds` (a
receive that does not wait: dead letters are rare and never urgent to the second). SQS returns
a result the moment it lands, so result -> reply latency does not depend on how many
environments exist.

Only environments that can produce results are polled: an environment whose `status.phase`
(written by the operator, read from the listing Hermes already does) is not Sleeping, one that
Hermes just sent a command to, and a Sleeping one for `graceSeconds` after it was last seen
awake (its editor may still be finishing and writing results while its pod terminates). A
Sleeping environment has no consumer on its input queue, so no new result or dead letter can
appear in its queues; after the grace period it costs no SQS call at all. An environment first
seen asleep (Hermes restarted) gets one drain: a receive of each queue without waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from webordinary.contracts.environment import Phase
from webordinary.hermes import environments as envs
from webordinary.hermes.adapters.aws import QueueMessage

log = logging.getLogger(__name__)

Handler = Callable[[QueueMessage, bool, str], Awaitable[bool]]
"""(message, from_dlq, environment) -> True when the message may be deleted."""


class Receiver(Protocol):
    async def receive(
        self, url: str, max_messages: int = 10, wait_seconds: int = 0,
        visibility_seconds: int | None = None,
    ) -> list[QueueMessage]: ...

    async def delete(self, url: str, receipt_handle: str) -> None: ...


@dataclass
class Watch:
    """One environment as the pollers see it."""

    environment: str
    output: str | None = None
    dlq: str | None = None
    sleeping: bool = False
    awake_at: float | None = None
    """When it was last seen awake or sent a command (monotonic); None: never."""
    task: asyncio.Task[None] | None = None
    drained: bool = False
    drain: asyncio.Task[None] | None = None


class ResultPollers:
    """Keeps one poll task per environment that can produce results, and none for others."""

    def __init__(
        self, queues: Receiver, handle: Handler, *, wait_seconds: int = 20,
        visibility_seconds: int = 60, dlq_interval: float = 60.0, grace: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[int], None] | None = None,
        on_error: Callable[[], None] | None = None,
    ) -> None:
        self.queues = queues
        self.handle = handle
        self.wait_seconds = wait_seconds
        self.visibility_seconds = visibility_seconds
        self.dlq_interval = dlq_interval
        self.grace = grace
        self.clock = clock
        self.on_change = on_change
        self.on_error = on_error
        self.watches: dict[str, Watch] = {}
        self._sweeper: asyncio.Task[None] | None = None

    def polling(self) -> list[str]:
        """Environments with a running poll task."""
        return [n for n, w in self.watches.items() if w.task is not None and not w.task.done()]

    def draining(self) -> int:
        """Environments first seen asleep whose one drain is still running."""
        return sum(1 for w in self.watches.values() if w.drain is not None and not w.drain.done())

    def wanted(self, watch: Watch) -> bool:
        """Whether the environment can produce results now (or within its grace period)."""
        if watch.output is None and watch.dlq is None:
            return False
        if not watch.sleeping:
            return True
        return watch.awake_at is not None and self.clock() - watch.awake_at < self.grace

    def observe(self, objects: list[dict[str, Any]]) -> None:
        """A fresh listing of EditEnvironments: start and stop poll tasks accordingly."""
        now = self.clock()
        seen: set[str] = set()
        for obj in objects:
            name = str((obj.get("metadata") or {}).get("name") or "")
            if not name:
                continue
            seen.add(name)
            watch = self.watches.get(name) or Watch(name)
            self.watches[name] = watch
            watch.output = envs.queue_url(obj, "output")
            watch.dlq = envs.queue_url(obj, "dlq")
            watch.sleeping = envs.phase_of(obj) == Phase.SLEEPING.value
            if not watch.sleeping:
                watch.awake_at = now
            self._settle(watch)
        for name in [n for n in self.watches if n not in seen]:
            self._stop(self.watches.pop(name), drain=True)
        self._changed()

    def touch(self, environment: str, obj: dict[str, Any] | None = None) -> None:
        """Hermes sent the environment a command: its results are coming, poll it now."""
        watch = self.watches.get(environment) or Watch(environment)
        self.watches[environment] = watch
        if obj is not None:
            watch.output = envs.queue_url(obj, "output") or watch.output
            watch.dlq = envs.queue_url(obj, "dlq") or watch.dlq
        watch.awake_at = self.clock()
        self._settle(watch)
        self._changed()

    def _settle(self, watch: Watch) -> None:
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.create_task(self._sweep_dlqs(), name="results dlq sweep")
        running = watch.task is not None and not watch.task.done()
        if self.wanted(watch):
            if not running:
                watch.task = asyncio.create_task(self._poll(watch),
                                                 name=f"results {watch.environment}")
        elif running:
            self._stop(watch)
        elif not watch.drained and watch.awake_at is None and (watch.output or watch.dlq):
            watch.drained = True  # first seen asleep: whatever is left in its queues, once
            watch.drain = asyncio.create_task(self._drain(watch),
                                              name=f"drain {watch.environment}")

    def _stop(self, watch: Watch, drain: bool = False) -> None:
        if watch.task is not None and not watch.task.done():
            watch.task.cancel()
        watch.task = None
        if drain and watch.drain is not None and not watch.drain.done():
            watch.drain.cancel()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(len(self.polling()))

    async def _take(self, url: str, from_dlq: bool, environment: str, wait: int) -> int:
        batch = await self.queues.receive(url, 10, wait, self.visibility_seconds)
        for message in batch:
            try:
                if await self.handle(message, from_dlq, environment):
                    await self.queues.delete(url, message.receipt_handle)
            except asyncio.CancelledError:
                raise
            except Exception:  # the message comes back after its visibility timeout
                log.exception("result %s from %s not handled", message.message_id, url)
        return len(batch)

    async def _drain(self, watch: Watch) -> None:
        for url, from_dlq in ((watch.output, False), (watch.dlq, True)):
            if not url:
                continue
            try:
                while await self._take(url, from_dlq, watch.environment, 0) == 10:
                    pass
            except Exception as exc:
                if self.on_error is not None:
                    self.on_error()
                log.warning("draining %s of %s failed: %s", url, watch.environment, exc)

    async def _sweep_dlqs(self) -> None:
        """Every dlq_interval, one receive (no wait) of each polled environment's DLQ, spread
        evenly over the interval (a burst of a thousand calls would hold up results)."""
        while True:
            due = [w for w in list(self.watches.values()) if w.dlq and self.wanted(w)]
            if not due:
                await asyncio.sleep(self.dlq_interval)
                continue
            pause = self.dlq_interval / len(due)
            for watch in due:
                await asyncio.sleep(pause)
                if watch.dlq and self.wanted(watch):
                    await self._sweep(watch)

    async def _sweep(self, watch: Watch) -> None:
        assert watch.dlq
        try:
            while await self._take(watch.dlq, True, watch.environment, 0) == 10:
                pass
        except Exception as exc:
            if self.on_error is not None:
                self.on_error()
            log.warning("sweeping the DLQ of %s failed: %s", watch.environment, exc)

    async def _poll(self, watch: Watch) -> None:
        failures = 0
        if watch.dlq:  # once at the start: what died while nobody was polling
            await self._sweep(watch)
        while self.wanted(watch):
            try:
                if watch.output:
                    await self._take(watch.output, False, watch.environment, self.wait_seconds)
                else:
                    await asyncio.sleep(self.wait_seconds)
                failures = 0
            except asyncio.CancelledError:
                raise
            except TimeoutError:  # a long poll that outlived its wait: simply poll again
                if self.on_error is not None:
                    self.on_error()
                log.info("polling results of %s timed out", watch.environment)
            except Exception as exc:
                failures += 1
                if self.on_error is not None:
                    self.on_error()
                log.warning("polling results of %s failed (%d): %s", watch.environment,
                            failures, exc)
                await asyncio.sleep(min(30.0, 0.5 * 2**failures))
        self._changed()

    async def close(self) -> None:
        tasks = [t for w in self.watches.values() for t in (w.task, w.drain) if t is not None]
        if self._sweeper is not None:
            tasks.append(self._sweeper)
            self._sweeper = None
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.watches.clear()
