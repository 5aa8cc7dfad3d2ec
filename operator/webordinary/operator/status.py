"""Status of an environment from what a reconcile observed: conditions, phase, transitions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from webordinary.contracts.environment import (
    Condition,
    ConditionType,
    EditEnvironmentStatus,
    Phase,
    QueueUrls,
)

# Pod states that no retry by the kubelet fixes: an image, config or program needs changing.
STUCK_WAITING: Final = frozenset({
    "ImagePullBackOff", "ErrImagePull", "InvalidImageName", "CreateContainerConfigError",
    "CreateContainerError", "CrashLoopBackOff", "RunContainerError",
})
SLEEPING: Final = "Sleeping"
STARTING: Final = "Starting"

PART_CONDITIONS = (
    ConditionType.QUEUES_READY,
    ConditionType.IDENTITY_READY,
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
    """Ready is the conjunction of the parts (the editor available, the workspace bound); its
    reason is the first part that is not ready, permanent failures and sleep first."""
    if report.invalid is not None:
        return Part(False, "InvalidSpec", report.invalid, permanent=True)
    for kind in PART_CONDITIONS:  # a failure that needs someone comes first
        part = report.parts.get(kind)
        if part is not None and part.ok is False and part.permanent:
            return Part(False, part.reason, f"{kind}: {part.message}", permanent=True)
    workload = report.parts.get(ConditionType.WORKLOAD_READY)
    if workload is not None and workload.reason == SLEEPING:  # asleep is not an error
        return Part(False, SLEEPING, workload.message)
    for kind in PART_CONDITIONS:
        part = report.parts.get(kind, Part(None, "Pending", "not observed yet"))
        if part.ok is not True:
            return Part(False if part.ok is False else None, part.reason,
                        f"{kind}: {part.message}", permanent=part.permanent)
    return Part(True, "Available", "the editor is available and its workspace bound")


def phase_of(ready: Part, report: Report) -> Phase:
    """Ready / Sleeping / Starting / Provisioning / Failed from the parts (see operations.md)."""
    if ready.ok is True:
        return Phase.READY
    if ready.permanent:
        return Phase.FAILED
    others = [part for kind, part in report.parts.items()
              if kind not in (ConditionType.WORKLOAD_READY, ConditionType.STORAGE_READY)]
    settled = {ConditionType.QUEUES_READY, ConditionType.ROUTING_READY} <= set(report.parts) and (
        all(part.ok is True for part in others))
    workload = report.parts.get(ConditionType.WORKLOAD_READY)
    if settled and workload is not None and workload.reason == SLEEPING:
        return Phase.SLEEPING
    storage = report.parts.get(ConditionType.STORAGE_READY)
    observed = [part for part in (workload, storage) if part is not None]
    if settled and report.replicas == 1 and any(part.ok is False for part in observed):
        return Phase.STARTING
    return Phase.PROVISIONING


def _age(meta: Mapping[str, Any], now: datetime) -> float:
    created = meta.get("creationTimestamp")
    if not created:
        return 0.0
    try:
        at = datetime.fromisoformat(str(created).replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    return max(0.0, (now - at).total_seconds())


def storage_part(
    pvc: Mapping[str, Any] | None, now: datetime, bind_timeout: float, waiting_since: float = 0.0
) -> Part:
    """StorageReady from the workspace PVC: True only when Bound; Pending past `bind_timeout`
    seconds (counted from its creation, or `waiting_since` seconds ago if that is shorter:
    e.g. since a wake, for volumes bound on first use) is a clear failure."""
    if pvc is None:
        return Part(None, "Pending", "workspace PVC not created yet")
    phase = str((pvc.get("status") or {}).get("phase") or "Pending")
    claim = pvc.get("spec") or {}
    if phase == "Bound":
        volume = claim.get("volumeName") or "a volume"
        return Part(True, "Bound", f"workspace PVC bound to {volume}")
    if phase == "Lost":
        return Part(False, "VolumeLost", "workspace PVC lost its volume; restore it from backup",
                    permanent=True)
    waited = _age(pvc.get("metadata") or {}, now)
    if waiting_since:
        waited = min(waited, waiting_since)
    if waited >= bind_timeout:
        return Part(False, "BindTimeout",
                    f"workspace PVC Pending for {waited:.0f}s: no volume from storage class "
                    f"{claim.get('storageClassName')!r} (does it exist, can it provision?)",
                    permanent=True)
    return Part(False, "Binding", f"workspace PVC {phase}, waiting for a volume")


def pod_problem(pod: Mapping[str, Any]) -> Part | None:
    """Why a pod is not getting ready, as a condition part; None when nothing is wrong yet."""
    status = pod.get("status") or {}
    name = (pod.get("metadata") or {}).get("name", "pod")
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            reason = str(condition.get("reason") or "Unschedulable")
            return Part(False, reason, f"{name}: {condition.get('message') or reason}")
    for container in [*(status.get("initContainerStatuses") or []),
                      *(status.get("containerStatuses") or [])]:
        waiting = (container.get("state") or {}).get("waiting") or {}
        reason = str(waiting.get("reason") or "")
        if reason in STUCK_WAITING:
            detail = waiting.get("message") or ""
            last = ((container.get("lastState") or {}).get("terminated") or {})
            if not detail and last:
                detail = f"last exit code {last.get('exitCode')} ({last.get('reason', '')})"
            restarts = container.get("restartCount") or 0
            return Part(False, reason,
                        f"{name} container {container.get('name')}: {detail or reason}"
                        + (f"; {restarts} restarts" if restarts else ""),
                        permanent=True)
    if status.get("phase") == "Failed":
        return Part(False, "PodFailed", f"{name}: {status.get('message') or 'failed'}",
                    permanent=True)
    return None


def workload_part(
    deployment: Mapping[str, Any] | None,
    pods: Sequence[Mapping[str, Any]],
    replicas: int,
    starting_for: float,
    start_timeout: float,
) -> Part:
    """WorkloadReady from the editor Deployment and its pods: True only when available."""
    if replicas == 0:
        return Part(False, SLEEPING,
                    "scaled to zero; a message, an email or a wake request starts it")
    if deployment is None:
        return Part(None, "Pending", "editor Deployment not created yet")
    meta = deployment.get("metadata") or {}
    status = deployment.get("status") or {}
    current = int(status.get("observedGeneration") or 0) >= int(meta.get("generation") or 0)
    if current and int(status.get("availableReplicas") or 0) >= 1:
        return Part(True, "Available", "editor available (1 replica)")
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("status") == "False":
            reason = str(condition.get("reason") or "ProgressDeadlineExceeded")
            return Part(False, reason, f"editor Deployment: {condition.get('message') or reason}",
                        permanent=True)
    for pod in pods:
        problem = pod_problem(pod)
        if problem is not None:
            if starting_for >= start_timeout and not problem.permanent:
                return Part(False, problem.reason, problem.message, permanent=True)
            return problem
    if starting_for >= start_timeout:
        return Part(False, "StartTimeout",
                    f"editor not available after {starting_for:.0f}s (no pod problem reported)",
                    permanent=True)
    ready = int(status.get("readyReplicas") or 0)
    return Part(False, STARTING, f"editor starting ({ready} ready, waiting for availability)")


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
        phase=phase_of(ready, report),
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
    """A short description when a person should hear of the change (a Kubernetes Event):
    reaching Ready, failing, or losing readiness other than by sleeping. Steps on the way
    (Provisioning -> Starting) and sleep/wake (their own Slept/Woke events) are not posted:
    at thousands of environments each Event is an API write for every one of them."""
    if before.phase == after.phase:
        return None
    lost = before.phase == Phase.READY and after.phase != Phase.SLEEPING
    if after.phase in (Phase.READY, Phase.FAILED) or lost:
        return f"{before.phase} -> {after.phase}"
    return None
