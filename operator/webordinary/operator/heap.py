"""How the operator's long-lived heap meets CPython's cyclic garbage collector.

At a thousand environments the operator holds ~700,000 container objects that live as long as
their environments (kopf's per-object memories, watch state, timers, our own caches). Every
full (generation 2) collection walks all of them: 300-650 ms of one core on a quiet machine,
more under load, and the event loop stands still meanwhile (a single wake that meets one is a
several-hundred-millisecond outlier). Raising the thresholds only makes the young collections
longer.

`FreezeAfterFull` moves what survived a full collection into CPython's permanent generation
(`gc.freeze()`): at that moment the heap holds no cyclic garbage, and the next full collections
only walk what was allocated since. Frozen objects are still freed by reference counting; only
a cycle among them that becomes garbage stays until the next unfreeze, which comes once per
`unfreeze_seconds` (one whole-heap collection then, as before, once instead of every few
seconds under load).
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class FreezeAfterFull:
    """A `gc.callbacks` entry: freeze after every full collection; unfreeze now and then."""

    def __init__(self, unfreeze_seconds: float = 3600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._unfreeze_seconds = unfreeze_seconds
        self._clock = clock
        self._since = clock()
        self.freezes = 0
        self.unfreezes = 0

    def install(self) -> None:
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)

    def uninstall(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase != "stop" or info.get("generation") != 2:
            return
        if self._clock() - self._since < self._unfreeze_seconds:
            # The collection is over: everything still tracked is reachable (or was allocated
            # by a finalizer just now); from here on full collections skip it.
            gc.freeze()
            self.freezes += 1
            return
        # Once in a while the next full collection walks the whole heap again (freeing cycles
        # of objects that died while frozen) and is followed by a freeze like any other.
        self._since = self._clock()
        gc.unfreeze()
        self.unfreezes += 1
        log.debug("heap: unfrozen for one whole collection")
