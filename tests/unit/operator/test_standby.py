"""A paused standby's own clocks (sleep deadlines, the wake poller) do not act: kopf's rule over
the peering record, and what the clocks do while paused."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from webordinary.operator.standby import is_active, record_paths
from webordinary.operator.wakeups import Deadlines, Key, SleepingQueues

NOW = datetime(2026, 11, 28, 23, 0, tzinfo=UTC)


def peer(priority: int, seen_ago: float = 1.0, lifetime: int = 30) -> dict[str, object]:
    return {"priority": priority, "lifetime": lifetime,
            "lastseen": (NOW - timedelta(seconds=seen_ago)).isoformat()}


def test_only_the_highest_live_priority_is_active() -> None:
    assert is_active({"me": peer(10)}, 10, NOW)
    assert not is_active({"me": peer(10), "other": peer(20)}, 10, NOW)
    assert is_active({"me": peer(20), "other": peer(10)}, 20, NOW)
    assert is_active({"me": peer(10), "gone": peer(20, seen_ago=31)}, 10, NOW)  # expired
    assert not is_active({"me": peer(10), "twin": peer(10)}, 10, NOW)  # kopf pauses both
    assert record_paths("wo", []) == ["/apis/kopf.dev/v1/clusterkopfpeerings/wo"]
    assert record_paths("wo", ["a"]) == ["/apis/kopf.dev/v1/namespaces/a/kopfpeerings/wo"]


async def test_paused_clocks_park_deadlines_and_skip_looks() -> None:
    active = False
    fired: list[Key] = []
    looks: list[str] = []

    async def fire(key: Key, at: datetime) -> None:
        fired.append(key)

    async def probe(url: str) -> bool | None:
        looks.append(url)
        return False

    async def wake(key: Key, busy: bool | None) -> None:
        return None

    deadlines = Deadlines(fire, may_act=lambda: active)
    sleepers = SleepingQueues(0.05, probe, wake, may_act=lambda: active)
    sleepers.start()
    sleepers.add(("ns", "b"), "q-b")
    deadlines.arm(("ns", "a"), datetime.now(UTC))
    await asyncio.sleep(0.2)
    assert fired == []
    assert looks == []
    assert deadlines.parked == {("ns", "a")}, "kept for when this replica is active"
    active = True
    await asyncio.sleep(0.2)
    assert looks, "an active replica looks again"
    await sleepers.stop()
    deadlines.close()
