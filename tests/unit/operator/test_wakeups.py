"""The clocks of sleep and wake: per-environment deadlines and the sleeping-queue poller."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from webordinary.operator.wakeups import Deadlines, Key, SleepingQueues


async def test_deadline_fires_once_at_its_time_and_rearming_replaces_it() -> None:
    fired: list[tuple[Key, float]] = []
    loop = asyncio.get_running_loop()

    async def fire(key: Key) -> None:
        fired.append((key, loop.time()))

    deadlines = Deadlines(fire)
    start = loop.time()
    deadlines.arm(("ns", "a"), datetime.now(UTC) + timedelta(seconds=0.3))
    deadlines.arm(("ns", "a"), datetime.now(UTC) + timedelta(seconds=0.1))  # replaces
    deadlines.arm(("ns", "b"), datetime.now(UTC) + timedelta(seconds=0.2))
    deadlines.cancel(("ns", "b"))
    assert len(deadlines) == 1
    await asyncio.sleep(0.45)
    assert [key for key, _ in fired] == [("ns", "a")]
    assert 0.08 <= fired[0][1] - start <= 0.3
    assert len(deadlines) == 0
    deadlines.close()


async def test_a_past_deadline_fires_at_once() -> None:
    fired: list[Key] = []

    async def fire(key: Key) -> None:
        fired.append(key)

    deadlines = Deadlines(fire)
    deadlines.arm(("ns", "late"), datetime.now(UTC) - timedelta(minutes=5))
    await asyncio.sleep(0.05)
    assert fired == [("ns", "late")]


async def test_sleeping_queues_are_looked_at_once_per_interval_and_wake_on_messages() -> None:
    busy = {"q-a": False, "q-b": False}
    looks: list[str] = []
    woken: list[tuple[Key, bool | None]] = []

    async def probe(url: str) -> bool | None:
        looks.append(url)
        return busy.get(url)

    async def wake(key: Key, state: bool | None) -> None:
        woken.append((key, state))

    sleepers = SleepingQueues(0.2, probe, wake)
    sleepers.start()
    sleepers.add(("ns", "a"), "q-a")
    sleepers.add(("ns", "b"), "q-b")
    sleepers.add(("ns", "gone"), "q-gone")
    await asyncio.sleep(0.5)  # first look within one interval, then one per interval
    assert 2 <= looks.count("q-a") <= 3
    assert 2 <= looks.count("q-b") <= 3
    assert woken == [(("ns", "gone"), None)]  # a vanished queue is reported once
    busy["q-b"] = True
    await asyncio.sleep(0.25)
    assert (("ns", "b"), True) in woken
    assert ("ns", "b") not in sleepers  # woken environments leave the poller
    sleepers.discard(("ns", "a"))
    before = len(looks)
    await asyncio.sleep(0.3)
    assert len(looks) == before
    assert sleepers.probes == len(looks)
    await sleepers.stop()


async def test_a_failing_look_is_retried_next_interval() -> None:
    calls = 0

    async def probe(url: str) -> bool | None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("throttled")
        return True

    woken: list[Key] = []

    async def wake(key: Key, state: bool | None) -> None:
        woken.append(key)

    sleepers = SleepingQueues(0.1, probe, wake)
    sleepers.start()
    sleepers.add(("ns", "a"), "q")
    await asyncio.sleep(0.35)
    assert woken == [("ns", "a")]
    await sleepers.stop()
