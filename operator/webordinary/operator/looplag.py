"""How late the operator's event loop runs, and (opt-in) what held it when it stood still.

Everything the operator does shares one event loop: a wake waits behind whatever runs on it
(a drift tick, a batch of sleep deadlines, kopf's processing of a watch burst, a full garbage
collection). `LagProbe` measures that as a production metric: a task that sleeps a fixed
interval and records how much later than asked it woke (a few wake-ups a second, nothing more).

`StallReporter` names the cause of a long stall: a thread asks the loop for a callback every
`tick`; when the callback is `threshold` late, it samples the loop thread's stack until the
loop answers and logs one line with the stall's length, the garbage collections inside it and
the stacks seen most. Its wake-ups cost ~0.4 % of a core (as much as a fifth of an idle
operator's CPU), so it runs only while asked: SIGUSR1 turns it on, the next SIGUSR1 off.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import signal
import sys
import threading
import time
from collections import Counter
from typing import Any

from prometheus_client import Histogram

log = logging.getLogger(__name__)

STACK_DEPTH = 12  # innermost frames kept per sample


class LagProbe:
    """A task that observes how late the loop wakes it (`interval` apart) into `histogram`."""

    def __init__(self, histogram: Histogram, interval: float = 0.25) -> None:
        self._histogram = histogram
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time() + self._interval
            await asyncio.sleep(self._interval)
            self._histogram.observe(max(0.0, loop.time() - asked))


def stack_of(thread_id: int, depth: int = STACK_DEPTH) -> str:
    """The innermost `depth` frames of a thread, innermost last ("module:function:line")."""
    frame = sys._current_frames().get(thread_id)
    parts: list[str] = []
    while frame is not None and len(parts) < depth:
        module = frame.f_globals.get("__name__", "?")
        if parts or module != __name__:  # not this module's own frames (a GC callback)
            parts.append(f"{module}:{frame.f_code.co_name}:{frame.f_lineno}")
        frame = frame.f_back
    return " < ".join(parts)


class StallReporter:
    """A watchdog thread: logs each stall of `loop` longer than `threshold` seconds, with the
    garbage collections in it and the loop thread's most frequent stacks meanwhile."""

    def __init__(self, loop: asyncio.AbstractEventLoop, threshold: float,
                 tick: float = 0.02, sample: float = 0.005,
                 loop_thread: int | None = None) -> None:
        self._loop = loop
        self._threshold = threshold
        self._tick = tick
        self._sample = sample
        self._loop_thread = loop_thread
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._gc_start = 0.0
        self._collections: list[tuple[float, float, int]] = []  # wall start, end, generation
        self._gc_lock = threading.Lock()
        self.records: list[dict[str, Any]] = []  # the latest reports (at most 1,000)

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        """Call from the loop's own thread, or name that thread (`loop_thread`)."""
        if self._thread is not None:
            return
        if self._loop_thread is None:
            self._loop_thread = threading.get_ident()
        self._stopped.clear()
        gc.callbacks.append(self._on_gc)
        self._thread = threading.Thread(target=self._watch, name="loop-stall-reporter",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def toggle(self) -> None:
        if self.running:
            self.stop()
        else:
            self.start()
        log.warning("event loop stall reports (over %.0f ms): %s", self._threshold * 1000,
                    "on" if self.running else "off")

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_start = time.time()
            return
        start, end = self._gc_start, time.time()
        with self._gc_lock:
            self._collections.append((start, end, int(info["generation"])))
            del self._collections[:-64]
        if end - start >= self._threshold and threading.get_ident() == self._loop_thread:
            # The watchdog cannot run while a collection holds the interpreter: a stall that
            # is one collection is reported from here, with the stack that triggered it.
            self.report(start, end - start, Counter({stack_of(self._loop_thread): 1}),
                        end - start)

    def _watch(self) -> None:
        answered = threading.Event()
        while not self._stopped.is_set():
            answered.clear()
            asked, asked_wall, cpu = time.perf_counter(), time.time(), time.process_time()
            try:
                self._loop.call_soon_threadsafe(answered.set)
            except RuntimeError:
                return  # the loop is closed
            if answered.wait(self._threshold):
                self._stopped.wait(self._tick)
                continue
            stacks: Counter[str] = Counter()
            while not answered.wait(self._sample):
                if self._stopped.is_set():
                    return
                stacks[stack_of(self._loop_thread or 0)] += 1
            self.report(asked_wall, time.perf_counter() - asked, stacks,
                        time.process_time() - cpu)

    def report(self, start: float, seconds: float, stacks: Counter[str],
               cpu: float | None = None) -> None:
        """One stall: `start` is when the late callback was asked for (wall time; the loop may
        have been busy up to a tick before), `seconds` until it ran, `cpu` the seconds of CPU
        the whole process had meanwhile (little: it waited for a CPU; about `seconds` while
        the loop was idle: another of its threads held the interpreter)."""
        end = start + seconds
        with self._gc_lock:
            inside = [(a, b, g) for a, b, g in self._collections if b > start and a < end]
        record: dict[str, Any] = {
            "start": round(start, 4), "ms": round(seconds * 1000, 1),
            "gc_ms": round(sum(min(b, end) - max(a, start) for a, b, _ in inside) * 1000, 1),
            "gc": [[g, round((b - a) * 1000, 1)] for a, b, g in inside if b - a >= 0.001],
            "cpu_ms": None if cpu is None else round(cpu * 1000, 1),
            "samples": sum(stacks.values()),
            "stacks": [[count, stack] for stack, count in stacks.most_common(3)],
        }
        self.records.append(record)
        del self.records[:-1000]
        log.warning("event loop stalled: %s", json.dumps(record))


def on_signal(reporter: StallReporter, signum: int = signal.SIGUSR1) -> bool:
    """Let `signum` toggle `reporter` (only the main thread's loop can have signal handlers:
    False elsewhere, e.g. an operator run in a test's thread)."""
    if threading.current_thread() is not threading.main_thread():
        return False
    asyncio.get_running_loop().add_signal_handler(signum, reporter.toggle)
    return True
