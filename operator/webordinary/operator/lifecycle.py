"""Sleep and wake: whether an environment's editor should run, as a pure decision."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from webordinary.contracts.duration import parse_duration
from webordinary.contracts.environment import EditEnvironmentSpec


@dataclass(frozen=True)
class Signals:
    """What tells the operator that an environment is in use."""

    created: datetime
    last_activity: datetime | None = None  # status.lastActivity (the operator's memory)
    wake_requested: datetime | None = None  # ANNOTATION_WAKE (Hermes)
    editor_activity: datetime | None = None  # ANNOTATION_ACTIVITY (the editor)
    queue_busy: bool | None = None  # input queue has visible or in-flight messages


@dataclass(frozen=True)
class Decision:
    replicas: int
    last_activity: datetime
    reason: str
    sleeps_at: datetime | None  # when it will go to sleep if nothing happens


def parse_timestamp(value: str | None) -> datetime | None:
    """RFC 3339 from an annotation; None when absent or unreadable (never a crash)."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def decide(spec: EditEnvironmentSpec, signals: Signals, now: datetime) -> Decision:
    """Awake (1) while used within spec.idleTimeout, asleep (0) after; suspend forces 0.

    Timestamps from the future (clock skew, typos) count as now.
    """
    known = [
        min(t, now)
        for t in (signals.created, signals.last_activity, signals.wake_requested,
                  signals.editor_activity)
        if t is not None
    ]
    if signals.queue_busy:
        known.append(now)
    last = max(known)
    idle: timedelta = parse_duration(spec.idle_timeout)
    if spec.suspend:
        return Decision(0, last, "Suspended", None)
    if now - last < idle:
        return Decision(1, last, "Active", last + idle)
    return Decision(0, last, "Idle", None)
