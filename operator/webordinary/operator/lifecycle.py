"""Sleep and wake: whether an environment's editor should run, as a pure decision."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from webordinary.contracts.activity import parse_timestamp
from webordinary.contracts.duration import parse_duration
from webordinary.contracts.environment import EditEnvironmentSpec

__all__ = ["Decision", "Signals", "decide", "parse_timestamp"]


@dataclass(frozen=True)
class Signals:
    """What tells the operator that an environment is in use."""

    created: datetime
    last_activity: datetime | None = None  # status.lastActivity (the operator's memory)
    wake_requested: datetime | None = None  # ANNOTATION_WAKE (Hermes, gateway, SREs)
    activity: datetime | None = None  # ANNOTATION_ACTIVITY (Hermes, gateway)
    queue_busy: bool | None = None  # input queue has visible, delayed or in-flight messages


@dataclass(frozen=True)
class Decision:
    replicas: int
    last_activity: datetime
    reason: str  # Active | Idle | Suspended
    sleeps_at: datetime | None  # when it will go to sleep if nothing happens
    cause: str  # the newest signal: Created | WakeRequest | Activity | Message | Observed


def decide(spec: EditEnvironmentSpec, signals: Signals, now: datetime) -> Decision:
    """Awake (1) while used within spec.idleTimeout, asleep (0) after; suspend forces 0.

    A busy input queue (a job running or messages waiting) counts as use now. Timestamps from
    the future (clock skew, typos) count as now.
    """
    known = [
        (min(t, now), cause)
        for t, cause in ((signals.created, "Created"), (signals.last_activity, "Observed"),
                         (signals.activity, "Activity"), (signals.wake_requested, "WakeRequest"))
        if t is not None
    ]
    if signals.queue_busy:
        known.append((now, "Message"))
    last, cause = max(known, key=lambda item: item[0])
    idle: timedelta = parse_duration(spec.idle_timeout)
    if spec.suspend:
        return Decision(0, last, "Suspended", None, cause)
    if now - last < idle:
        return Decision(1, last, "Active", last + idle, cause)
    return Decision(0, last, "Idle", None, cause)
