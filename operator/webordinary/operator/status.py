"""Status of an environment from what a reconcile observed: conditions, phase, transitions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from webordinary.contracts.environment import (
    Condition,
    ConditionType,
    EditEnvironmentStatus,
    Phase,
    QueueUrls,
)

PART_CONDITIONS = (
    ConditionType.QUEUES_READY,
    ConditionType.STORAGE_READY,
    ConditionType.WORKLOAD_READY,
    ConditionType.ROUTING_READY,
)


@dataclass(frozen=True)
class Part:
    """One observed aspect of an environment (queues, storage, workload, routing)."""

    ok: bool | None  # None: not known yet
    reason: str
    message: str = ""
    permanent: bool = False  # needs a spec or outside change; retrying alone will not help

    @property
    def status(self) -> str:
        return "Unknown" if self.ok is None else str(self.ok)


@dataclass(frozen=True)
class Report:
    """Everything the status is computed from."""

    generation: int | None
    parts: dict[ConditionType, Part]
    queues: QueueUrls
    replicas: int
    sessions: int
    container_id: str | None
    preview_base_path: str | None
    last_activity: datetime | None
    invalid: str | None = None  # message naming the invalid field


def make_condition(
    kind: ConditionType | str,
    part: Part,
    generation: int | None,
    previous: list[Condition],
    now: datetime,
) -> Condition:
    """A condition whose lastTransitionTime only moves when its status does."""
    before = next((c for c in previous if c.type == str(kind)), None)
    moved = before is None or before.status != part.status
    return Condition(
        type=str(kind),
        status=part.status,
        reason=part.reason,
        message=part.message,
        last_transition_time=now if moved or before is None else before.last_transition_time,
        observed_generation=generation,
    )


def ready_part(report: Report) -> Part:
    """Ready is the conjunction of the parts; its reason is the first one that is not ready."""
    if report.invalid is not None:
        return Part(False, "InvalidSpec", report.invalid, permanent=True)
    for kind in PART_CONDITIONS:
        part = report.parts.get(kind, Part(None, "Pending", "not observed yet"))
        if part.ok is not True:
            return Part(False if part.ok is False else None, part.reason,
                        f"{kind}: {part.message}", permanent=part.permanent)
    if report.replicas == 0:
        return Part(True, "Sleeping", "scaled to zero; a message or a wake request starts it")
    return Part(True, "Reconciled", "every child and queue is in place")


def phase_of(ready: Part, replicas: int) -> Phase:
    if ready.ok is True:
        return Phase.SLEEPING if replicas == 0 else Phase.READY
    if ready.permanent:
        return Phase.FAILED
    return Phase.PROVISIONING


def compute_status(
    previous: EditEnvironmentStatus, report: Report, now: datetime
) -> EditEnvironmentStatus:
    """The next status; equal to `previous` when nothing changed (so no write is needed)."""
    now = now.replace(microsecond=0)
    ready = ready_part(report)
    conditions: list[Condition] = []
    if report.invalid is None:
        conditions = [
            make_condition(kind, report.parts[kind], report.generation, previous.conditions, now)
            for kind in PART_CONDITIONS
            if kind in report.parts
        ]
    else:
        conditions = [c for c in previous.conditions if c.type in map(str, PART_CONDITIONS)]
    conditions.append(
        make_condition(ConditionType.READY, ready, report.generation, previous.conditions, now)
    )
    return EditEnvironmentStatus(
        phase=phase_of(ready, report.replicas),
        conditions=conditions,
        observed_generation=report.generation,
        queues=report.queues,
        container_id=report.container_id,
        preview_base_path=report.preview_base_path,
        session_count=report.sessions,
        replicas=report.replicas,
        last_activity=report.last_activity,
        message=None if ready.ok else ready.message,
    )


def with_condition(
    previous: EditEnvironmentStatus,
    kind: ConditionType,
    part: Part,
    now: datetime,
    phase: Phase | None = None,
) -> EditEnvironmentStatus:
    """`previous` with one condition set (e.g. Degraded while a finalizer is stuck)."""
    condition = make_condition(
        kind, part, previous.observed_generation, previous.conditions, now.replace(microsecond=0)
    )
    others = [c for c in previous.conditions if c.type != str(kind)]
    return previous.model_copy(update={
        "conditions": [*others, condition],
        "phase": phase or previous.phase,
        "message": part.message if part.ok is False or kind == ConditionType.DEGRADED
        else previous.message,
    })


def transition(before: EditEnvironmentStatus, after: EditEnvironmentStatus) -> str | None:
    """A short description when the phase or Ready changed (worth a Kubernetes Event)."""
    def ready(status: EditEnvironmentStatus) -> str | None:
        return next((c.status for c in status.conditions if c.type == ConditionType.READY), None)

    if before.phase == after.phase and ready(before) == ready(after):
        return None
    return f"{before.phase} -> {after.phase}"
