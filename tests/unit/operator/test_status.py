"""Conditions and phase: computed from observations, transition times kept when unchanged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from webordinary.contracts.environment import (
    ConditionType,
    EditEnvironmentStatus,
    Phase,
    QueueUrls,
)
from webordinary.operator.status import (
    Part,
    Report,
    compute_status,
    storage_part,
    transition,
    with_condition,
    workload_part,
)

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
OK = Part(True, "Applied", "fine")
DEPLOYMENT = {"metadata": {"generation": 2}, "status": {"observedGeneration": 2}}


def report(replicas: int = 1, invalid: str | None = None, **parts: Part) -> Report:
    base = {
        ConditionType.QUEUES_READY: OK,
        ConditionType.IDENTITY_READY: OK,
        ConditionType.STORAGE_READY: OK,
        ConditionType.WORKLOAD_READY: OK,
        ConditionType.ROUTING_READY: OK,
    }
    for key, value in parts.items():
        base[ConditionType(key)] = value
    return Report(
        generation=3, parts=base, queues=QueueUrls(input="i", output="o", dlq="d"),
        replicas=replicas, sessions=2, container_id="c", preview_base_path="/session/",
        last_activity=T0, invalid=invalid,
    )


def conditions(status: EditEnvironmentStatus) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in status.conditions}


def test_all_parts_ready_is_ready() -> None:
    status = compute_status(EditEnvironmentStatus(), report(), T0)
    assert status.phase == Phase.READY
    assert conditions(status)["Ready"] == ("True", "Available")
    assert all(c.observed_generation == 3 for c in status.conditions)
    assert status.observed_generation == 3
    assert status.message is None
    assert status.session_count == 2


def test_zero_replicas_is_sleeping_not_ready_and_not_an_error() -> None:
    asleep = workload_part(None, [], 0, 0.0, 600)
    pending = Part(False, "Binding", "waiting for a volume")
    status = compute_status(EditEnvironmentStatus(), report(
        replicas=0, WorkloadReady=asleep, StorageReady=pending), T0)
    assert status.phase == Phase.SLEEPING
    assert conditions(status)["Ready"] == ("False", "Sleeping")
    assert conditions(status)["WorkloadReady"] == ("False", "Sleeping")


def test_woken_editor_not_available_is_starting() -> None:
    starting = workload_part(DEPLOYMENT, [], 1, 3.0, 600)
    status = compute_status(EditEnvironmentStatus(), report(WorkloadReady=starting), T0)
    assert status.phase == Phase.STARTING
    assert conditions(status)["Ready"] == ("False", "Starting")


def test_pvc_pending_is_not_ready() -> None:
    pending = storage_part({"metadata": {"creationTimestamp": "2026-01-01T12:00:00Z"},
                            "status": {"phase": "Pending"}}, T0 + timedelta(seconds=5), 300)
    status = compute_status(EditEnvironmentStatus(), report(StorageReady=pending), T0)
    assert conditions(status)["Ready"] == ("False", "Binding")
    assert status.phase == Phase.STARTING


def test_transient_problem_is_provisioning() -> None:
    status = compute_status(
        EditEnvironmentStatus(),
        report(QueuesReady=Part(False, "AWSThrottled", "SQS said slow down")), T0)
    assert status.phase == Phase.PROVISIONING
    assert conditions(status)["Ready"] == ("False", "AWSThrottled")
    assert status.message is not None
    assert "SQS said slow down" in status.message


def test_permanent_problem_is_failed() -> None:
    status = compute_status(
        EditEnvironmentStatus(),
        report(QueuesReady=Part(False, "QueueConflict", "owned by x", permanent=True)), T0)
    assert status.phase == Phase.FAILED
    assert conditions(status)["QueuesReady"] == ("False", "QueueConflict")


def test_invalid_spec_names_the_field() -> None:
    status = compute_status(EditEnvironmentStatus(), report(invalid="spec.idleTimeout: bad"), T0)
    assert status.phase == Phase.FAILED
    ready = next(c for c in status.conditions if c.type == "Ready")
    assert (ready.status, ready.reason) == ("False", "InvalidSpec")
    assert ready.message == "spec.idleTimeout: bad"
    assert status.message == "spec.idleTimeout: bad"


def test_unknown_part_is_not_ready() -> None:
    status = compute_status(
        EditEnvironmentStatus(), report(WorkloadReady=Part(None, "Waiting", "queues first")), T0)
    assert status.phase == Phase.PROVISIONING
    assert conditions(status)["WorkloadReady"] == ("Unknown", "Waiting")


def test_transition_time_kept_while_status_unchanged() -> None:
    first = compute_status(EditEnvironmentStatus(), report(), T0)
    later = T0 + timedelta(minutes=5)
    second = compute_status(first, report(), later)
    assert second == first, "an unchanged world must produce an identical status (no write)"
    broken = compute_status(second, report(QueuesReady=Part(
        False, "QueueMissing", "gone")), later)
    times = {c.type: c.last_transition_time for c in broken.conditions}
    assert times["QueuesReady"] == later
    assert times["Ready"] == later
    assert times["StorageReady"] == T0
    assert transition(second, broken) == "Ready -> Provisioning"
    assert transition(first, second) is None


def test_events_only_for_what_a_person_needs() -> None:
    def status(phase: Phase) -> EditEnvironmentStatus:
        return EditEnvironmentStatus(phase=phase)

    assert transition(status(Phase.PENDING), status(Phase.PROVISIONING)) is None
    assert transition(status(Phase.PROVISIONING), status(Phase.STARTING)) is None
    assert transition(status(Phase.STARTING), status(Phase.READY)) == "Starting -> Ready"
    assert transition(status(Phase.STARTING), status(Phase.FAILED)) == "Starting -> Failed"
    assert transition(status(Phase.READY), status(Phase.STARTING)) == "Ready -> Starting"
    assert transition(status(Phase.READY), status(Phase.SLEEPING)) is None  # Slept says it
    assert transition(status(Phase.SLEEPING), status(Phase.STARTING)) is None  # Woke says it


def test_microseconds_are_dropped() -> None:
    status = compute_status(EditEnvironmentStatus(), report(), T0.replace(microsecond=123))
    assert status.conditions[0].last_transition_time == T0


def test_with_condition_sets_degraded() -> None:
    base = compute_status(EditEnvironmentStatus(), report(), T0)
    degraded = with_condition(base, ConditionType.DEGRADED,
                              Part(True, "CleanupFailed", "queues stay"), T0, Phase.TERMINATING)
    assert degraded.phase == Phase.TERMINATING
    assert conditions(degraded)["Degraded"] == ("True", "CleanupFailed")
    assert degraded.message == "queues stay"
    assert len(degraded.conditions) == len(base.conditions) + 1


def test_status_round_trips_through_the_wire() -> None:
    status = compute_status(EditEnvironmentStatus(), report(), T0)
    assert EditEnvironmentStatus.model_validate(status.to_wire()) == status


def pod(**status: object) -> dict[str, object]:
    return {"metadata": {"name": "env-editor-abc"}, "status": status}


def test_pod_problems_name_their_reason() -> None:
    from webordinary.operator.status import pod_problem

    crash = pod(phase="Running", containerStatuses=[{
        "name": "editor", "restartCount": 4,
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": 3, "reason": "Error"}}}])
    part = pod_problem(crash)
    assert part is not None
    assert (part.reason, part.permanent) == ("CrashLoopBackOff", True)
    assert "exit code 3" in part.message
    assert "4 restarts" in part.message
    pull = pod(containerStatuses=[{"name": "editor", "state": {"waiting": {
        "reason": "ImagePullBackOff", "message": "pull access denied"}}}])
    assert pod_problem(pull) is not None
    unschedulable = pod(conditions=[{"type": "PodScheduled", "status": "False",
                                     "reason": "Unschedulable",
                                     "message": "0/3 nodes: insufficient memory"}])
    part = pod_problem(unschedulable)
    assert part is not None
    assert (part.reason, part.permanent) == ("Unschedulable", False)
    assert "insufficient memory" in part.message
    assert pod_problem(pod(phase="Pending")) is None


def test_workload_is_available_only_with_a_current_available_replica() -> None:
    stale = {"metadata": {"generation": 3},
             "status": {"observedGeneration": 2, "availableReplicas": 1}}
    assert workload_part(stale, [], 1, 1.0, 600).reason == "Starting"
    fresh = {"metadata": {"generation": 3},
             "status": {"observedGeneration": 3, "availableReplicas": 1}}
    assert workload_part(fresh, [], 1, 1.0, 600).ok is True
    late = workload_part(stale, [], 1, 601.0, 600)
    assert (late.reason, late.permanent) == ("StartTimeout", True)
    unschedulable = pod(conditions=[{"type": "PodScheduled", "status": "False",
                                     "reason": "Unschedulable"}])
    assert workload_part(stale, [unschedulable], 1, 5.0, 600).permanent is False
    assert workload_part(stale, [unschedulable], 1, 700.0, 600).permanent is True


def test_pvc_pending_past_the_timeout_is_a_failure() -> None:
    claim = {"metadata": {"creationTimestamp": "2026-01-01T12:00:00Z"},
             "spec": {"storageClassName": "efs-sc"}, "status": {"phase": "Pending"}}
    waiting = storage_part(claim, T0 + timedelta(seconds=60), 300)
    assert (waiting.ok, waiting.reason) == (False, "Binding")
    late = storage_part(claim, T0 + timedelta(seconds=301), 300)
    assert (late.reason, late.permanent) == ("BindTimeout", True)
    assert "efs-sc" in late.message
    # Counted from a recent wake when that is shorter (volumes bound on first use).
    assert storage_part(claim, T0 + timedelta(hours=5), 300, waiting_since=10).reason == "Binding"
    bound = storage_part({**claim, "status": {"phase": "Bound"}}, T0, 300)
    assert (bound.ok, bound.reason) == (True, "Bound")


def test_no_aws_identity_is_never_ready() -> None:
    """An editor without its EKS Pod Identity association cannot reach its queues: not Ready,
    with the identity's reason (a permanent one fails the environment)."""
    denied = Part(False, "AccessDenied", "CreatePodIdentityAssociation: AccessDeniedException",
                  permanent=True)
    status = compute_status(EditEnvironmentStatus(), report(IdentityReady=denied), T0)
    assert status.phase == Phase.FAILED
    assert conditions(status)["Ready"] == ("False", "AccessDenied")
    assert conditions(status)["IdentityReady"] == ("False", "AccessDenied")
    throttled = Part(False, "AWSThrottled", "ListPodIdentityAssociations: ThrottlingException")
    status = compute_status(EditEnvironmentStatus(), report(IdentityReady=throttled), T0)
    assert status.phase == Phase.PROVISIONING
    assert conditions(status)["Ready"] == ("False", "AWSThrottled")
    missing = {k: v for k, v in report().parts.items() if k != ConditionType.IDENTITY_READY}
    unknown = Report(**{**report().__dict__, "parts": missing})
    assert conditions(compute_status(EditEnvironmentStatus(), unknown, T0))["Ready"][0] != "True"
