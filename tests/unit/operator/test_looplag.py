"""The operator's event-loop lag metric and its stall reports."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import time
from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry

from webordinary.operator.looplag import LagProbe, StallReporter, on_signal
from webordinary.operator.metrics import Metrics


async def within(seconds: float, check: Callable[[], bool]) -> bool:
    """Whether `check` holds within `seconds` (the signal's handler runs on the loop)."""
    for _ in range(int(seconds / 0.01)):
        if check():
            return True
        await asyncio.sleep(0.01)
    return check()


def held_up(seconds: float) -> None:
    """A synchronous stretch on the loop (what a wake would wait behind)."""
    time.sleep(seconds)


async def test_the_lag_metric_sees_a_blocked_loop() -> None:
    metrics = Metrics(CollectorRegistry())
    probe = LagProbe(metrics.loop_lag, interval=0.02)
    probe.start()
    await asyncio.sleep(0.05)
    held_up(0.15)
    await asyncio.sleep(0.05)
    await probe.stop()
    total = metrics.registry.get_sample_value("webordinary_operator_event_loop_lag_seconds_sum")
    assert total is not None
    assert total >= 0.1


async def test_a_stall_is_reported_with_the_stack_that_held_the_loop(
        caplog: pytest.LogCaptureFixture) -> None:
    reporter = StallReporter(asyncio.get_running_loop(), threshold=0.03)
    reporter.start()
    try:
        await asyncio.sleep(0.1)
        with caplog.at_level(logging.WARNING, logger="webordinary.operator.looplag"):
            held_up(0.25)
            await asyncio.sleep(0.1)
    finally:
        reporter.stop()
    # (a loaded machine may add stalls of its own: the one held up is what must be there)
    stall = next(x for x in reporter.records if x["stacks"] and "held_up" in x["stacks"][0][1])
    assert stall["ms"] >= 150
    assert stall["samples"] > 0
    assert stall["cpu_ms"] < stall["ms"] / 2  # it slept: no CPU went to anything else
    assert "held_up" in stall["stacks"][0][1]
    assert "event loop stalled" in caplog.text


async def test_a_garbage_collection_inside_a_stall_is_named() -> None:
    reporter = StallReporter(asyncio.get_running_loop(), threshold=0.03)
    reporter.start()
    try:
        await asyncio.sleep(0.05)
        started = time.monotonic()
        while time.monotonic() - started < 0.1:
            gc.collect()
        await asyncio.sleep(0.1)
    finally:
        reporter.stop()
    collected = [x for x in reporter.records if x["gc_ms"] > 0]
    assert collected
    assert any(generation == 2 for x in collected for generation, _ in x["gc"])


async def test_sigusr1_turns_the_reports_on_and_off() -> None:
    reporter = StallReporter(asyncio.get_running_loop(), threshold=0.03)
    assert on_signal(reporter)
    try:
        os.kill(os.getpid(), signal.SIGUSR1)
        assert await within(2.0, lambda: reporter.running)
        os.kill(os.getpid(), signal.SIGUSR1)
        assert await within(2.0, lambda: not reporter.running)
    finally:
        asyncio.get_running_loop().remove_signal_handler(signal.SIGUSR1)
        reporter.stop()
