"""The clocks of sleep and wake: per-environment deadlines and the sleeping-queue poller."""

from __future__ import annotations

import asyncio
import math
import random
from datetime import UTC, datetime, timedelta

import pytest

from webordinary.operator.wakeups import LOOK_GRID, Deadlines, Key, SleepingQueues, first_look


async def test_deadline_fires_once_at_its_time_and_rearming_replaces_it() -> None:
    fired: list[tuple[Key, float]] = []
    loop = asyncio.get_running_loop()

    async def fire(key: Key, at: datetime) -> None:
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


async def test_a_deadline_with_a_lead_fires_that_early_and_is_told_its_time() -> None:
    fired: list[tuple[datetime, float]] = []
    loop = asyncio.get_running_loop()

    async def fire(key: Key, at: datetime) -> None:
        fired.append((at, loop.time()))

    deadlines = Deadlines(fire, lead=0.2)
    start = loop.time()
    at = datetime.now(UTC) + timedelta(seconds=0.3)
    deadlines.arm(("ns", "a"), at)
    await asyncio.sleep(0.25)
    assert [when for when, _ in fired] == [at]
    assert 0.08 <= fired[0][1] - start <= 0.2
    deadlines.close()


async def test_coinciding_deadlines_fire_earlier_the_more_there_are() -> None:
    async def fire(key: Key, at: datetime) -> None:
        return None

    deadlines = Deadlines(fire, lead=2.0, crowd_lead=0.5, max_lead=3.2)
    at = datetime.now(UTC) + timedelta(hours=1)
    leads = []
    for i in range(4):
        leads.append(deadlines.lead(at))
        deadlines.arm(("ns", f"e{i}"), at - timedelta(seconds=i))  # each one second earlier
    assert leads == [2.0, 2.5, 3.0, 3.2], "one crowd lead per deadline armed before, capped"
    later = at + timedelta(seconds=Deadlines.CROWD_WINDOW + 4)
    assert deadlines.lead(later) == 2.0, "deadlines more than the window before do not count"
    assert deadlines.lead(at - timedelta(seconds=5)) == 2.0, "nor those after it"
    deadlines.cancel(("ns", "e0"))
    deadlines.arm(("ns", "e1"), at + timedelta(hours=2))  # re-armed elsewhere
    assert deadlines.lead(at) == 3.0
    deadlines.close()
    assert deadlines.lead(at) == 2.0, "closed: nothing armed"


async def test_a_deadline_being_handled_is_not_armed_twice() -> None:
    calls: list[datetime] = []
    release = asyncio.Event()

    async def fire(key: Key, at: datetime) -> None:
        calls.append(at)
        await release.wait()  # reading ahead

    deadlines = Deadlines(fire, lead=0.05)
    at = datetime.now(UTC) + timedelta(seconds=0.06)
    deadlines.arm(("ns", "a"), at)
    await asyncio.sleep(0.05)
    assert calls == [at]
    assert deadlines.when(("ns", "a")) == at, "handled now: still its deadline"
    deadlines.arm(("ns", "a"), at)  # e.g. a reconcile meanwhile that decided the same
    await asyncio.sleep(0.1)
    assert calls == [at], "not called a second time"
    release.set()
    await asyncio.sleep(0.01)
    assert deadlines.when(("ns", "a")) is None
    deadlines.close()


async def test_a_past_deadline_fires_at_once() -> None:
    fired: list[Key] = []

    async def fire(key: Key, at: datetime) -> None:
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


@pytest.mark.parametrize("interval", [60.0, 0.2])
def test_first_looks_fall_on_a_grid_within_one_interval(interval: float) -> None:
    step = interval / LOOK_GRID
    rng = random.Random(7)
    firsts = set()
    for _ in range(2000):
        now = rng.uniform(0, 10_000 * interval)
        at = first_look(now, interval, rng.uniform(0.05, 1.0))
        assert now < at <= now + interval
        assert at / step == pytest.approx(round(at / step), abs=1e-6)
        firsts.add(round(at / step) - math.ceil(now / step))
    # evenly spread over the interval's points (the looks of one point go out together)
    assert len(firsts) >= LOOK_GRID * 0.9
