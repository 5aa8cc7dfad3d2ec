"""Wake requests and activity stamps: annotation writes, rate-limited, off the request path.

The patches and the per-environment limiter are the shared ones of contracts.activity (Hermes
writes the same). Every replica also sees the others' writes through its watch, so a write is
skipped when the cluster already holds a recent one: however many visitors and replicas, an
environment gets about one wake request per `wake_interval` and one activity stamp per
`activity_interval`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from prometheus_client import Counter as MetricCounter

from webordinary.contracts import environment as env
from webordinary.contracts.activity import (
    ANNOTATION_WAKE,
    ActivityLimiter,
    activity_patch,
    wake_patch,
)
from webordinary.gateway.metrics import ACTIVITY_WRITES, WAKE_REQUESTS
from webordinary.gateway.routes import Environment, Key
from webordinary.kube import Client, KubeError, Resource

log = logging.getLogger(__name__)

EDIT_ENVIRONMENT: Final = Resource(env.API_VERSION, env.KIND, env.PLURAL)


def due(last_written: float | None, observed: float | None, now: float, interval: float) -> bool:
    """Whether a stamp is due: neither we nor anyone else wrote one within `interval`."""
    latest = max((t for t in (last_written, observed) if t is not None), default=None)
    return latest is None or now - latest >= interval


def at(now: float) -> datetime:
    """A wall-clock time, whole seconds (what Hermes writes too)."""
    return datetime.fromtimestamp(int(now), UTC)


def annotation_patch(annotation: str, now: float) -> dict[str, Any]:
    if annotation == ANNOTATION_WAKE:
        return wake_patch(at(now))
    return activity_patch(at(now))


class Signals:
    """Writes wake requests and activity for the environments visitors use."""

    def __init__(self, kube: Client, *, wake_interval: float, activity_interval: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.kube = kube
        self.wake_interval = wake_interval
        self.activity_interval = activity_interval
        self.clock = clock
        self._woken: dict[Key, float] = {}
        self._limiter = ActivityLimiter(activity_interval)
        self._by_key: dict[str, Environment] = {}
        self._inflight: set[Key] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.websockets: Counter[Key] = Counter()
        self._websocket_envs: dict[Key, Environment] = {}

    def wake(self, environment: Environment) -> bool:
        """Ask for a wake unless one is recent or on its way; True when a write was started."""
        key, now = environment.key, self.clock()
        if key in self._inflight or not due(
            self._woken.get(key), environment.wake_requested, now, self.wake_interval
        ):
            return False
        self._woken[key] = now
        self._write(environment, env.ANNOTATION_WAKE, now, WAKE_REQUESTS)
        return True

    def activity(self, environment: Environment) -> bool:
        """Note that the preview is in use (a recent wake request or stamp by anyone counts)."""
        now = self.clock()
        observed = max((t for t in (environment.activity, environment.wake_requested)
                        if t is not None), default=None)
        if observed is not None and now - observed < self.activity_interval:
            return False
        key = f"{environment.namespace}/{environment.name}"
        when = self._limiter.offer(key, at(now), time.monotonic())
        if when is None:
            self._by_key[key] = environment  # written by `flush` when the interval ends
            return False
        self._write(environment, env.ANNOTATION_ACTIVITY, when.timestamp(), ACTIVITY_WRITES)
        return True

    def flush(self) -> None:
        """Write the activity held back by the limiter whose interval has ended."""
        for key, when in self._limiter.due(time.monotonic()):
            environment = self._by_key.pop(key, None)
            if environment is not None:
                self._write(environment, env.ANNOTATION_ACTIVITY, when.timestamp(),
                            ACTIVITY_WRITES)

    def _write(self, environment: Environment, annotation: str, now: float,
               counter: MetricCounter) -> None:
        task = asyncio.create_task(self._patch(environment, annotation, now, counter))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _patch(self, environment: Environment, annotation: str, now: float,
                     counter: MetricCounter) -> None:
        waking = annotation == env.ANNOTATION_WAKE
        if waking:
            self._inflight.add(environment.key)
        try:
            await self.kube.patch(EDIT_ENVIRONMENT, environment.namespace, environment.name,
                                  annotation_patch(annotation, now))
            counter.labels("written").inc()
        except KubeError as exc:
            counter.labels("failed").inc()
            log.warning("%s on %s/%s not written: %s", annotation, environment.namespace,
                        environment.name, exc)
            if waking:  # the next visitor tries again rather than waiting out the interval
                self._woken.pop(environment.key, None)
        finally:
            if waking:
                self._inflight.discard(environment.key)

    def websocket_opened(self, environment: Environment) -> None:
        self.websockets[environment.key] += 1
        self._websocket_envs[environment.key] = environment

    def websocket_closed(self, environment: Environment) -> None:
        self.websockets[environment.key] -= 1
        if self.websockets[environment.key] <= 0:
            del self.websockets[environment.key]
            self._websocket_envs.pop(environment.key, None)

    async def keep_websockets_active(self, current: Callable[[Key], Environment | None]) -> None:
        """An open HMR websocket is someone looking at the preview: stamp it while it lasts;
        and write the activity the limiter held back."""
        while True:
            await asyncio.sleep(min(self.activity_interval / 4, 15.0))
            for key in list(self.websockets):
                environment = current(key) or self._websocket_envs.get(key)
                if environment is not None:
                    self.activity(environment)
            self.flush()

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
