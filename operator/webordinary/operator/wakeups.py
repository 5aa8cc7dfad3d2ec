"""The clocks of sleep and wake: a timer per awake environment at its sleep deadline, and one
shared poller that looks at the input queues of sleeping environments.

Both only decide *when* to look again; what happens then is the reconcile's business (a
callback). Drift ticks stay the safety net, not the clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from webordinary.operator.tasks import ended

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name)

# The sleeping-queue looks fall on a grid of interval / LOOK_GRID (1 s at the production 60 s),
# so that the looks due at one point go out together, in one wake-up of the poller. Spread one
# by one, each look took a wake-up of its own (a timer, epoll, the loop's rounds): about twice
# the CPU per look (~0.95 against ~0.5 ms at 17 looks a second), and these looks are most of
# what an operator with everything asleep spends.
LOOK_GRID: Final = 60


def first_look(now: float, interval: float, spread: float) -> float:
    """When a queue that starts being watched at `now` is first looked at: at the point
    `spread` (0.05-1) of the next interval, moved to the grid (never later than one interval)."""
    step = interval / LOOK_GRID
    return math.ceil((now + interval * spread - step) / step) * step


class Deadlines:
    """One pending call per environment, ahead of a wall-clock time that the call gets
    (re-arming replaces it): the call may read ahead and must not act before that time.

    It comes `lead` seconds early, plus `crowd_lead` seconds for every other deadline already
    armed in the `CROWD_WINDOW` seconds before it (at most `max_lead` in all): a thousand
    deadlines that coincide do their reads before the first of them, not queued behind each
    other's actions."""

    CROWD_WINDOW = 10

    def __init__(self, fire: Callable[[Key, datetime], Coroutine[Any, Any, None]],
                 may_act: Callable[[], bool] = lambda: True, lead: float = 0.0,
                 crowd_lead: float = 0.0, max_lead: float = 0.0) -> None:
        self._fire = fire
        self._may_act = may_act  # False on a paused standby: the deadline is parked
        self._lead = lead
        self._crowd_lead = crowd_lead
        self._max_lead = max(lead, max_lead)
        self._handles: dict[Key, asyncio.TimerHandle] = {}
        self._at: dict[Key, datetime] = {}
        self._seconds: dict[int, int] = {}  # deadlines armed per whole second
        self._firing: dict[Key, datetime] = {}  # called (reading ahead), not yet done
        self._tasks: set[asyncio.Task[None]] = set()
        self.parked: set[Key] = set()

    def arm(self, key: Key, at: datetime) -> None:
        if (self._at.get(key) == at and key in self._handles) or self._firing.get(key) == at:
            return
        self.cancel(key)
        loop = asyncio.get_running_loop()
        delay = max(0.0, at.timestamp() - self.lead(at) - time.time())
        self._at[key] = at
        second = int(at.timestamp())
        self._seconds[second] = self._seconds.get(second, 0) + 1
        self._handles[key] = loop.call_at(loop.time() + delay, self._run, key)

    def lead(self, at: datetime) -> float:
        """How early a deadline armed now at `at` fires."""
        second = int(at.timestamp())
        crowd = sum(self._seconds.get(s, 0) for s in range(second - self.CROWD_WINDOW,
                                                            second + 1))
        return min(self._max_lead, self._lead + self._crowd_lead * crowd)

    def cancel(self, key: Key) -> None:
        self.parked.discard(key)
        self._firing.pop(key, None)
        handle = self._handles.pop(key, None)
        self._forget(key)
        if handle is not None:
            handle.cancel()

    def _forget(self, key: Key) -> datetime | None:
        at = self._at.pop(key, None)
        if at is not None:
            second = int(at.timestamp())
            left = self._seconds.get(second, 0) - 1
            if left > 0:
                self._seconds[second] = left
            else:
                self._seconds.pop(second, None)
        return at

    def when(self, key: Key) -> datetime | None:
        """The pending deadline, or the one being handled (its call may still be reading)."""
        return self._at.get(key) or self._firing.get(key)

    def keys(self) -> set[Key]:
        return set(self._handles) | self.parked

    def _run(self, key: Key) -> None:
        self._handles.pop(key, None)
        at = self._forget(key)
        assert at is not None
        if not self._may_act():
            self.parked.add(key)
            return
        self._firing[key] = at
        task = asyncio.get_running_loop().create_task(self._fire(key, at))
        self._tasks.add(task)
        task.add_done_callback(lambda done: self._done(done, key, at))

    def _done(self, task: asyncio.Task[None], key: Key, at: datetime) -> None:
        self._tasks.discard(task)
        if self._firing.get(key) == at:
            del self._firing[key]
        if not task.cancelled() and task.exception() is not None:
            log.error("sleep deadline handling failed", exc_info=task.exception())

    def close(self) -> None:
        for key in list(self._handles):
            self.cancel(key)
        for task in self._tasks:
            task.cancel()
        self._firing.clear()

    def __len__(self) -> int:
        return len(self._handles)


@dataclass
class _Sleeper:
    url: str
    due: float  # monotonic time of its next look


class SleepingQueues:
    """Looks at each sleeping environment's input queue once per `interval` seconds (one
    GetQueueAttributes; SQS has no batch form of it), evenly spread over the points of a grid
    (LOOK_GRID per interval), and calls `wake` for
    those with messages (busy True) or whose queue is gone (None). Environments join when they
    fall asleep and leave when they wake.
    """

    def __init__(
        self,
        interval: float,
        probe: Callable[[str], Awaitable[bool | None]],
        wake: Callable[[Key, bool | None], Awaitable[None]],
        concurrency: int = 8,
        may_act: Callable[[], bool] = lambda: True,
    ) -> None:
        self.interval = interval
        self._probe = probe
        self._wake = wake
        self._may_act = may_act  # False on a paused standby: no looks
        self._sleepers: dict[Key, _Sleeper] = {}
        self._heap: list[tuple[float, Key]] = []
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._limit = asyncio.Semaphore(concurrency)
        self.probes = 0  # SQS calls made (for the benchmark and tests)

    def add(self, key: Key, url: str) -> None:
        """Watch `key`'s queue; its first look is at a random point of the next interval, so
        that environments falling asleep together are looked at evenly spread (a burst of
        looks would delay the wakes handled meanwhile), never more than one interval apart."""
        sleeper = self._sleepers.get(key)
        if sleeper is not None:
            sleeper.url = url
            return
        due = first_look(time.monotonic(), self.interval, random.uniform(0.05, 1.0))
        self._sleepers[key] = _Sleeper(url, due)
        heapq.heappush(self._heap, (due, key))
        self._changed.set()

    def discard(self, key: Key) -> None:
        self._sleepers.pop(key, None)  # its heap entry is skipped when it comes up

    def __contains__(self, key: Key) -> bool:
        return key in self._sleepers

    def keys(self) -> set[Key]:
        return set(self._sleepers)

    def __len__(self) -> int:
        return len(self._sleepers)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        await ended(self._task)
        self._task = None

    async def _loop(self) -> None:
        while True:
            now = time.monotonic()
            due: list[tuple[Key, _Sleeper]] = []
            while self._heap and self._heap[0][0] <= now:
                at, key = heapq.heappop(self._heap)
                sleeper = self._sleepers.get(key)
                if sleeper is None or sleeper.due != at:
                    continue  # left, or re-added with another time
                due.append((key, sleeper))
                sleeper.due = at + self.interval
                heapq.heappush(self._heap, (sleeper.due, key))
            if due and self._may_act():
                await asyncio.gather(*(self._look(key, sleeper.url) for key, sleeper in due))
            self._changed.clear()
            wait = self._heap[0][0] - time.monotonic() if self._heap else self.interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=max(0.05, wait))

    async def _look(self, key: Key, url: str) -> None:
        async with self._limit:
            self.probes += 1
            try:
                busy = await self._probe(url)
            except Exception as error:  # one failed look is retried at the next interval
                log.warning("input queue of %s/%s not readable: %s", *key, error)
                return
        # A message waits (busy) or the queue is gone (None): reconcile now.
        if (busy is None or busy) and key in self._sleepers:
            self.discard(key)
            await self._wake(key, busy)
