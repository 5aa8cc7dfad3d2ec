"""The wake/activity patches and the per-environment activity limiter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from webordinary.contracts.activity import (
    ANNOTATION_ACTIVITY,
    ANNOTATION_WAKE,
    ActivityLimiter,
    activity_patch,
    format_timestamp,
    parse_timestamp,
    wake_patch,
)

T0 = datetime(2026, 11, 28, 15, 0, 1, tzinfo=UTC)


def test_patches_carry_rfc3339_times() -> None:
    wake = wake_patch(T0)
    assert wake == {"metadata": {"annotations": {ANNOTATION_WAKE: "2026-11-28T15:00:01Z"}}}
    stamp = activity_patch(T0 + timedelta(microseconds=250_400))
    assert stamp == {"metadata": {"annotations": {
        ANNOTATION_ACTIVITY: "2026-11-28T15:00:01.250Z"}}}


def test_format_converts_to_utc_and_refuses_naive_times() -> None:
    cet = timezone(timedelta(hours=1))
    assert format_timestamp(datetime(2026, 1, 1, 13, 0, tzinfo=cet)) == "2026-01-01T12:00:00Z"
    with pytest.raises(ValueError, match="timezone"):
        format_timestamp(datetime(2026, 1, 1))


@pytest.mark.parametrize("text", [None, "", "yesterday", "2026-01-01T12:00:00"])
def test_unreadable_or_zoneless_times_are_none(text: str | None) -> None:
    assert parse_timestamp(text) is None


def test_parse_round_trips() -> None:
    at = T0 + timedelta(milliseconds=5)
    assert parse_timestamp(format_timestamp(at)) == at


def test_limiter_writes_first_then_holds_back_then_flushes_the_newest() -> None:
    limiter = ActivityLimiter(interval=30)
    assert limiter.offer("ns/a", T0, now=0.0) == T0
    assert limiter.offer("ns/a", T0 + timedelta(seconds=5), now=5.0) is None
    assert limiter.offer("ns/a", T0 + timedelta(seconds=3), now=6.0) is None  # older: kept out
    assert limiter.offer("ns/b", T0, now=6.0) == T0  # other environments are independent
    assert limiter.due(now=29.0) == []
    assert limiter.due(now=30.0) == [("ns/a", T0 + timedelta(seconds=5))]
    # The flush was a write: the next offer within the interval is held back again.
    assert limiter.offer("ns/a", T0 + timedelta(seconds=40), now=40.0) is None
    assert limiter.due(now=60.0) == [("ns/a", T0 + timedelta(seconds=40))]


def test_limiter_forgets_quiet_keys() -> None:
    limiter = ActivityLimiter(interval=10)
    for index in range(100):
        limiter.offer(f"ns/{index}", T0, now=0.0)
    assert len(limiter) == 100
    assert limiter.due(now=10.0) == []
    assert len(limiter) == 0
    assert limiter.offer("ns/1", T0, now=11.0) == T0


def test_zero_interval_writes_every_time() -> None:
    limiter = ActivityLimiter(interval=0)
    assert limiter.offer("k", T0, now=0.0) == T0
    assert limiter.offer("k", T0, now=0.0) == T0
