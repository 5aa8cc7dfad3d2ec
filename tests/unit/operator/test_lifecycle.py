"""Sleep after idleTimeout without activity, wake at once on a message or a wake request."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from webordinary.contracts.environment import EditEnvironmentSpec
from webordinary.operator.lifecycle import Signals, decide, parse_timestamp

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def spec(**overrides: object) -> EditEnvironmentSpec:
    return EditEnvironmentSpec.model_validate({
        "clientId": "c", "projectId": "p", "userId": "u",
        "repository": {"url": "https://x/y.git"}, "idleTimeout": "20m", **overrides,
    })


def test_new_environment_is_awake() -> None:
    decision = decide(spec(), Signals(created=T0), T0 + timedelta(seconds=1))
    assert (decision.replicas, decision.reason) == (1, "Active")
    assert decision.sleeps_at == T0 + timedelta(minutes=20)


def test_sleeps_after_idle_timeout() -> None:
    decision = decide(spec(), Signals(created=T0), T0 + timedelta(minutes=20))
    assert (decision.replicas, decision.reason) == (0, "Idle")


def test_busy_queue_keeps_it_awake_and_records_activity() -> None:
    now = T0 + timedelta(hours=3)
    decision = decide(spec(), Signals(created=T0, last_activity=T0, queue_busy=True), now)
    assert decision.replicas == 1
    assert decision.last_activity == now


def test_busy_queue_wakes_a_sleeper() -> None:
    now = T0 + timedelta(hours=3)
    assert decide(spec(), Signals(created=T0, queue_busy=False), now).replicas == 0
    assert decide(spec(), Signals(created=T0, queue_busy=True), now).replicas == 1


@pytest.mark.parametrize("field", ["wake_requested", "activity", "last_activity"])
def test_recent_signal_wakes(field: str) -> None:
    now = T0 + timedelta(hours=3)
    signals = Signals(created=T0, **{field: now - timedelta(seconds=5)})  # type: ignore[arg-type]
    decision = decide(spec(), signals, now)
    assert decision.replicas == 1
    assert decision.last_activity == now - timedelta(seconds=5)


def test_suspend_wins() -> None:
    decision = decide(spec(suspend=True), Signals(created=T0, queue_busy=True), T0)
    assert (decision.replicas, decision.reason) == (0, "Suspended")


def test_future_timestamps_count_as_now() -> None:
    now = T0 + timedelta(hours=3)
    decision = decide(spec(), Signals(created=T0, wake_requested=now + timedelta(days=9)), now)
    assert decision.last_activity == now
    assert decision.replicas == 1


def test_short_idle_timeout() -> None:
    assert decide(spec(idleTimeout="30s"), Signals(created=T0), T0 + timedelta(seconds=31)
                  ).replicas == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-01T12:00:00Z", T0),
        ("2026-01-01T12:00:00+00:00", T0),
        ("2026-01-01T12:00:00", None),
        ("yesterday", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_timestamp(text: str | None, expected: datetime | None) -> None:
    assert parse_timestamp(text) == expected


def test_the_newest_signal_is_the_cause() -> None:
    now = T0 + timedelta(minutes=1)
    assert decide(spec(), Signals(created=T0), now).cause == "Created"
    woke = decide(spec(), Signals(created=T0, wake_requested=now, activity=T0), now)
    assert woke.cause == "WakeRequest"
    used = decide(spec(), Signals(created=T0, activity=now), now)
    assert used.cause == "Activity"
    assert decide(spec(), Signals(created=T0, queue_busy=True), now).cause == "Message"
