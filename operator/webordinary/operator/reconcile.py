"""One idempotent reconcile of an EditEnvironment: parse -> observe -> plan -> apply -> report."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import ValidationError

from webordinary.contracts import naming
from webordinary.contracts.environment import (
    ANNOTATION_ACTIVITY,
    ANNOTATION_WAKE,
    KIND,
    Condition,
    ConditionType,
    EditEnvironmentSpec,
    EditEnvironmentStatus,
    Phase,
    QueueUrls,
)
from webordinary.operator import admission, builders, drift, identity, lifecycle
from webordinary.operator.adapters.eks import EksAdapter
from webordinary.operator.adapters.kube import KubeClient, KubeError
from webordinary.operator.adapters.sqs import Owner as QueueOwner
from webordinary.operator.adapters.sqs import SqsAdapter, SqsFailure
from webordinary.operator.latest import Latest
from webordinary.operator.metrics import Metrics
from webordinary.operator.observed import Observed, child_version
from webordinary.operator.settings import OperatorSettings
from webordinary.operator.status import (
    STARTING,
    Part,
    Report,
    compute_status,
    storage_part,
    transition,
    workload_part,
)
from webordinary.operator.wakeups import Deadlines, SleepingQueues

LOG = logging.getLogger(__name__)
Mode = Literal["full", "lifecycle"]
POD = builders.Kind("v1", "Pod", "pods")

PARTS_BY_KIND = {
    builders.PVC.kind: ConditionType.STORAGE_READY,
    builders.SERVICE_ACCOUNT.kind: ConditionType.WORKLOAD_READY,
    builders.DEPLOYMENT.kind: ConditionType.WORKLOAD_READY,
    builders.SERVICE.kind: ConditionType.ROUTING_READY,
    builders.INGRESS.kind: ConditionType.ROUTING_READY,
    builders.NETWORK_POLICY.kind: ConditionType.ROUTING_READY,
}


STATUS_CACHE = 256


def _never_synced(kind: str, namespace: str) -> bool:
    return False


@dataclass
class Runtime:
    """What every handler shares: settings, adapters, metrics, per-environment locks."""

    settings: OperatorSettings
    sqs: SqsAdapter
    metrics: Metrics
    eks: EksAdapter | None = None  # editor_aws_identity pod-identity only
    kube: KubeClient | None = None
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    last_done: dict[str, float] = field(default_factory=dict)  # uid -> loop time of last run
    # uid -> (monotonic time of the scale-up, wall time of the wake signal, its cause)
    starting: dict[str, tuple[float, float, str]] = field(default_factory=dict)
    deadlines: Deadlines | None = None
    sleepers: SleepingQueues | None = None
    names: dict[tuple[str, str], str] = field(default_factory=dict)  # (ns, label) -> name
    child_seen: dict[tuple[str, str, str], tuple[Any, ...]] = field(default_factory=dict)
    # (kind, namespace, name) -> version of each child as its watch last showed it
    child_versions: dict[tuple[str, str, str], str] = field(default_factory=dict)
    # uid -> the children a full reconcile found (or made) in sync, at these versions
    verified: dict[str, dict[tuple[str, str, str], str]] = field(default_factory=dict)
    refreshing: set[tuple[str, str]] = field(default_factory=set)
    refresh_again: set[tuple[str, str]] = field(default_factory=set)
    refresh_full: set[tuple[str, str]] = field(default_factory=set)  # ...as a full reconcile
    # refreshes that have not yet taken their environment's lock (see handlers.coalesced)
    refresh_pending: set[tuple[str, str]] = field(default_factory=set)
    # (uid, resourceVersion) -> its status parsed (status_of)
    statuses: dict[tuple[str, str], EditEnvironmentStatus] = field(default_factory=dict)
    deleting: set[str] = field(default_factory=set)  # uids whose cleanup has begun
    observed: Observed = field(default_factory=Observed)  # children as the watches show them
    # uid -> the wake and activity annotations, the generation and resourceVersion last seen
    marks: dict[str, tuple[str | None, str | None, Any, Any]] = field(default_factory=dict)
    stamped: dict[str, Any] = field(default_factory=dict)  # uid -> resourceVersion to wake on
    # background work (delayed refreshes, Events, the listing keeper), cancelled at cleanup
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    admitted: dict[str, Any] = field(default_factory=dict)  # uid -> generation whose spec passed
    # uid -> (generation, its spec parsed, or why it is invalid): see spec_of
    specs: dict[str, tuple[Any, EditEnvironmentSpec | None, str | None]] = field(
        default_factory=dict)
    identity_checked: dict[str, float] = field(default_factory=dict)  # uid -> loop time in sync
    # (kind, namespace) -> whether the child watches have delivered every such object and
    # follow them (ChildWatch.synced): then `observed` answers for them without a LIST
    synced: Callable[[str, str], bool] = _never_synced
    latest: Latest = field(default_factory=Latest)  # the newest version of each environment

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` in the background, kept (and cancelled at cleanup) until it ends."""
        task = asyncio.get_running_loop().create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def lock(self, uid: str) -> asyncio.Lock:
        return self.locks.setdefault(uid, asyncio.Lock())

    def client(self) -> KubeClient:
        if self.kube is None:
            raise RuntimeError("not logged in to the Kubernetes API yet")
        return self.kube


@dataclass
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass
class Outcome:
    """What a reconcile did; `retry_in` is set when a transient problem needs another go."""

    status: EditEnvironmentStatus
    previous: EditEnvironmentStatus
    written: bool = False
    retry_in: float | None = None
    error_reason: str | None = None
    events: list[Event] = field(default_factory=list)
    decision: lifecycle.Decision | None = None


def fingerprint(kind: str, body: Mapping[str, Any]) -> tuple[Any, ...]:
    """What of a child's status matters to the environment's status (a watch event that
    brings no new fingerprint is no news)."""
    status = body.get("status") or {}
    conditions = tuple((c.get("type"), c.get("status"), c.get("reason"))
                       for c in status.get("conditions") or [])
    if kind == "Deployment":
        return (status.get("observedGeneration"), status.get("replicas"),
                status.get("readyReplicas"), status.get("availableReplicas"), conditions)
    if kind == "Pod":
        containers = tuple(
            (c.get("name"), c.get("ready"), tuple((c.get("state") or {}).keys()),
             ((c.get("state") or {}).get("waiting") or {}).get("reason"))
            for c in status.get("containerStatuses") or [])
        return (status.get("phase"), conditions, containers)
    return (status.get("phase"),)


def describe_validation(error: ValidationError) -> str:
    """`spec.idleTimeout: Value error, ...` for the first problem, so the field is named."""
    first = error.errors()[0]
    path = "spec"
    for part in first["loc"]:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return f"{path}: {first['msg']}"


def previous_status(raw: Any) -> EditEnvironmentStatus:
    """The last status written; anything unreadable counts as none."""
    try:
        return EditEnvironmentStatus.model_validate(dict(raw or {}))
    except ValidationError:
        return EditEnvironmentStatus()


def status_of(rt: Runtime, body: Mapping[str, Any]) -> EditEnvironmentStatus:
    """`previous_status` of `body`, parsed once per version (a refresh checks it, then its
    reconcile starts from it); the most recent STATUS_CACHE versions are kept. Read only."""
    meta = body.get("metadata") or {}
    key = (meta.get("uid") or "", str(meta.get("resourceVersion") or ""))
    if not key[1]:
        return previous_status(body.get("status"))
    found = rt.statuses.get(key)
    if found is None:
        found = rt.statuses[key] = previous_status(body.get("status"))
        if len(rt.statuses) > STATUS_CACHE:
            del rt.statuses[next(iter(rt.statuses))]
    return found


def parse_spec(raw: Any) -> tuple[EditEnvironmentSpec | None, str | None]:
    try:
        spec = EditEnvironmentSpec.model_validate(dict(raw or {}))
        builders.validate_spec(spec)
    except ValidationError as error:
        return None, describe_validation(error)
    except builders.SpecError as error:
        return None, str(error)
    return spec, None


def spec_of(rt: Runtime, uid: str, generation: Any,
            raw: Any) -> tuple[EditEnvironmentSpec | None, str | None]:
    """`parse_spec` once per generation of an environment (the API server gives a changed
    spec a new generation): a creation's child-status refreshes validated it again each."""
    if generation is None:
        return parse_spec(raw)
    known = rt.specs.get(uid)
    if known is not None and known[0] == generation:
        return known[1], known[2]
    spec, invalid = parse_spec(raw)
    rt.specs[uid] = (generation, spec, invalid)
    return spec, invalid


def is_foreign(live: Mapping[str, Any], owner: builders.Owner) -> str | None:
    """Why an existing object with a child's name is not ours to change (None: it is)."""
    refs = live.get("metadata", {}).get("ownerReferences") or []
    controller = next((r for r in refs if r.get("controller")), None)
    if controller is not None and not (
        controller.get("kind") == KIND and controller.get("name") == owner.name
    ):
        return f"controlled by {controller.get('kind')}/{controller.get('name')}"
    return None


def is_ours(live: Mapping[str, Any], owner: builders.Owner) -> bool:
    """Whether this environment controls the object (only then may it delete it)."""
    refs = live.get("metadata", {}).get("ownerReferences") or []
    return any(r.get("controller") and r.get("kind") == KIND and r.get("name") == owner.name
               for r in refs)


async def apply_child(
    kube: KubeClient,
    kind: builders.Kind,
    owner: builders.Owner,
    name: str,
    manifest: builders.Manifest | None,
    *,
    fresh: bool,
) -> tuple[Mapping[str, Any] | None, int]:
    """Make one child match its manifest; returns (live object, number of writes)."""
    if manifest is None:
        if fresh:
            return None, 0
        gone = await kube.get(kind, owner.namespace, name)
        if gone is None or not is_ours(gone, owner):
            return None, 0
        return None, int(await kube.delete(kind, owner.namespace, name))
    live: Mapping[str, Any] | None = None
    if fresh:
        try:
            return await kube.create(kind, owner.namespace, manifest), 1
        except KubeError as error:
            if error.status != 409:
                raise
    live = await kube.get(kind, owner.namespace, name)
    if live is None:
        return await kube.create(kind, owner.namespace, manifest), 1
    problem = is_foreign(live, owner)
    if problem is not None:
        raise KubeError(409, "ChildConflict", f"{kind.kind} {name} exists and is {problem}")
    view = builders.owned_view(kind, manifest)
    if drift.in_sync(view, live):
        return live, 0
    return await kube.patch(kind, owner.namespace, name, view), 1


def input_watched(rt: Runtime, owner: builders.Owner, previous: EditEnvironmentStatus) -> bool:
    """Whether something else reads this environment's input queue, so a drift tick need not:
    the wake poller while it sleeps, the sleep-deadline timer (which reads it before any
    sleep) while it is awake. At thousands of environments that read was most of the idle
    operator's CPU."""
    key = (owner.namespace, owner.name)
    if previous.replicas == 0:
        return rt.sleepers is not None and key in rt.sleepers
    return rt.deadlines is not None and rt.deadlines.when(key) is not None


def steady(rt: Runtime, body: Mapping[str, Any]) -> bool:
    """Whether a drift tick has nothing to check: the spec was reconciled, the environment is
    Ready or asleep (nothing time-driven pending), a full reconcile found every child in sync
    and no watch has shown a change to any of them since, and the shared queue listing (fresh)
    still shows its queues. Like a controller reading its informers' cache: an unchanged
    environment costs no API or SQS call per tick. (Pod Identity associations live outside
    the cluster's watches: with them, a tick checks when the last check that found the
    association in sync is older than `identity_check_interval`.)"""
    meta = body["metadata"]
    uid = meta.get("uid") or ""
    verified = rt.verified.get(uid)
    if not verified:
        return False
    if identity_due(rt, uid):
        return False
    if any(rt.child_versions.get(key) != version for key, version in verified.items()):
        return False
    previous = previous_status(body.get("status"))
    if previous.observed_generation != meta.get("generation") or previous.phase not in (
            Phase.READY, Phase.SLEEPING):
        return False
    queues = previous.queues
    if not (queues.input and queues.output and queues.dlq):
        return False
    return rt.sqs.listed(url.rsplit("/", 1)[-1] for url in (queues.input, queues.output,
                                                             queues.dlq)) is True


def identity_due(rt: Runtime, uid: str) -> bool:
    """Whether a drift tick must re-read the environment's EKS association (pod-identity mode
    only): the last check that found it in sync is `identity_check_interval` old, or none did.
    An association changed or deleted outside the operator is restored within that interval
    instead of one drift interval; spec changes and failed checks always re-check."""
    if rt.eks is None:
        return False
    last = rt.identity_checked.get(uid)
    return last is None or (asyncio.get_running_loop().time() - last
                            >= rt.settings.identity_check_interval())


def _kept_part(previous: EditEnvironmentStatus, kind: ConditionType) -> Part | None:
    """A part as the last status reported it (lifecycle reconciles do not re-check it)."""
    cond = next((c for c in previous.conditions if c.type == str(kind)), None)
    if cond is None or cond.status != "True":
        return None
    return Part(True, cond.reason, cond.message)


def _condition(previous: EditEnvironmentStatus, kind: ConditionType) -> Condition | None:
    return next((c for c in previous.conditions if c.type == str(kind)), None)


def lifecycle_ready(body: Mapping[str, Any], previous: EditEnvironmentStatus | None = None) -> bool:
    """Whether a lifecycle-only reconcile suffices: the spec was reconciled, queues and routing
    were fine (else the full reconcile runs). `previous`: the body's status, if parsed."""
    if previous is None:
        previous = previous_status(body.get("status"))
    generation = body["metadata"].get("generation")
    return bool(
        previous.observed_generation == generation and previous.queues.input
        and previous.queues.output and previous.queues.dlq
        and _kept_part(previous, ConditionType.QUEUES_READY)
        and _kept_part(previous, ConditionType.IDENTITY_READY)
        and _kept_part(previous, ConditionType.ROUTING_READY)
    )


def starting_for(rt: Runtime, uid: str, previous: EditEnvironmentStatus, now: datetime) -> float:
    """Seconds since the editor was asked to start (survives an operator restart through the
    WorkloadReady transition time)."""
    started = rt.starting.get(uid)
    if started is not None:
        return time.monotonic() - started[0]
    cond = _condition(previous, ConditionType.WORKLOAD_READY)
    if cond is not None and cond.status != "True" and previous.replicas == 1:
        return max(0.0, (now - cond.last_transition_time).total_seconds())
    return 0.0


async def observe_children(
    rt: Runtime,
    owner: builders.Owner,
    deployment: Mapping[str, Any] | None,
    pvc: Mapping[str, Any] | None,
    replicas: int,
    previous: EditEnvironmentStatus,
    now: datetime,
    *,
    watched_pods: bool = False,
) -> dict[ConditionType, Part]:
    """StorageReady and WorkloadReady from the live PVC, Deployment and (when the editor is
    not available) its pods: as the pod watch shows them (`watched_pods`, or once that watch
    has synced: a full reconcile of a starting editor listed them, one LIST per environment
    in a creation burst), else listed."""
    settings = rt.settings
    since = starting_for(rt, owner.uid, previous, now)
    pods: Sequence[Mapping[str, Any]] = []
    workload = workload_part(deployment, pods, replicas, since, settings.start_timeout_seconds)
    if workload.ok is not True and workload.reason == STARTING and deployment is not None:
        if watched_pods or rt.synced(POD.kind, owner.namespace):
            pods = rt.observed.pods(owner.namespace, builders.instance_label(owner.name))
        else:
            selector = ",".join(f"{k}={v}" for k, v in builders.selector_labels(owner).items())
            pods = await rt.client().list(POD, owner.namespace, selector)
        workload = workload_part(deployment, pods, replicas, since,
                                 settings.start_timeout_seconds)
    storage = storage_part(pvc, now, settings.storage_bind_timeout_seconds,
                           waiting_since=since if replicas else 0.0)
    return {ConditionType.STORAGE_READY: storage, ConditionType.WORKLOAD_READY: workload}


async def reconcile(
    rt: Runtime,
    body: Mapping[str, Any],
    *,
    fresh: bool,
    now: datetime,
    retry: int = 0,
    light: bool = False,
    mode: Mode = "full",
    queue_busy: bool | None = None,
    probe_queue: bool = False,
    current: bool = False,
) -> Outcome:
    """Bring one environment to its desired state and write its status once if it changed.

    `mode="lifecycle"` (wake/activity annotations, the sleep deadline, a child's status, a
    message on a sleeping queue) only decides replicas and observes the Deployment and PVC; it
    falls back to the full reconcile unless the spec was reconciled and queues and routing
    were fine. `probe_queue` reads the input queue's counts (one SQS call) in that mode.
    `current`: the body was just read from the API server (else a decision to sleep reads it).
    """
    meta = body["metadata"]
    owner = builders.Owner(meta["namespace"], meta["name"], meta["uid"])
    generation = meta.get("generation")
    previous = status_of(rt, body)
    spec, invalid = spec_of(rt, owner.uid, generation, body.get("spec"))
    if spec is not None:
        admitted = rt.admitted.get(owner.uid)
        if mode == "lifecycle" and admitted is not None and admitted == generation:
            invalid = None  # this generation passed in a full reconcile: no Secret read again
        else:
            invalid = await admission.problem(rt.client(), owner.namespace, spec, rt.settings)
            if invalid:
                rt.admitted.pop(owner.uid, None)
            else:
                rt.admitted[owner.uid] = generation
        spec = None if invalid else spec
    settings = rt.settings
    if spec is None:
        report = Report(
            generation=generation, parts={}, queues=previous.queues, replicas=previous.replicas,
            sessions=previous.session_count, container_id=previous.container_id,
            preview_base_path=previous.preview_base_path,
            last_activity=previous.last_activity, invalid=invalid,
        )
        outcome = Outcome(compute_status(previous, report, now), previous,
                          error_reason="InvalidSpec")
        return await _report(rt, owner, outcome)
    if mode == "lifecycle" and not lifecycle_ready(body, previous):
        mode, light = "full", True

    outcome = Outcome(previous, previous)
    parts: dict[ConditionType, Part] = {}
    transient: list[float | None] = []
    kube = rt.client()

    names = naming.queue_names(spec.client_id, spec.project_id, spec.user_id)
    queues: QueueUrls = previous.queues
    busy: bool | None = queue_busy
    if mode == "lifecycle":
        for kept_kind in (ConditionType.QUEUES_READY, ConditionType.IDENTITY_READY,
                          ConditionType.ROUTING_READY):
            kept = _kept_part(previous, kept_kind)
            assert kept is not None  # lifecycle_ready
            parts[kept_kind] = kept
        if probe_queue and busy is None and queues.input:
            try:
                busy = await rt.sqs.input_busy(queues.input)
            except SqsFailure as failure:  # unknown: decide on the other signals
                outcome.error_reason = failure.reason
    else:
        kept_identity = _kept_part(previous, ConditionType.IDENTITY_READY)
        if light and kept_identity is not None and not identity_due(rt, owner.uid):
            identity_task = asyncio.ensure_future(asyncio.sleep(0, kept_identity))
        else:
            identity_task = asyncio.ensure_future(
                _ensure_identity(rt, owner, outcome, transient))
        try:
            queue_report = await rt.sqs.ensure_queues(
                names, previous.queues, spec.queues,
                QueueOwner(owner.namespace, owner.name, owner.uid), light=light,
                skip_input=light and input_watched(rt, owner, previous),
            )
            queues = queue_report.urls
            busy = queue_report.busy if busy is None else busy
            parts[ConditionType.QUEUES_READY] = Part(True, "Provisioned", "input, output and DLQ")
            if queue_report.created:  # the usual case: a log line, not an Event (a write)
                LOG.info("%s/%s: created queues %s", owner.namespace, owner.name,
                         ", ".join(queue_report.created))
            if queue_report.adopted:
                outcome.events.append(Event("Normal", "QueuesAdopted",
                                            ", ".join(queue_report.adopted)))
        except SqsFailure as failure:
            parts[ConditionType.QUEUES_READY] = Part(False, failure.reason, str(failure),
                                                     permanent=not failure.transient)
            outcome.error_reason = failure.reason
            if failure.transient:
                transient.append(failure.delay)
        parts[ConditionType.IDENTITY_READY] = await identity_task

    annotations = meta.get("annotations") or {}
    decision = _decide(spec, meta, previous, busy, now)
    if decision.reason == "Idle" and previous.replicas != 0 and not current:
        # About to sleep on kopf's copy of the object, which may be older than the newest
        # stamp when kopf's queue runs behind (thousands of events): decide on the stored one.
        latest = await kube.get(builders.EDIT_ENVIRONMENT, owner.namespace, owner.name)
        if latest is not None:
            meta = latest["metadata"]
            annotations = meta.get("annotations") or {}
            decision = _decide(spec, meta, previous_status(latest.get("status")), busy, now)
    outcome.decision = decision
    if previous.replicas != decision.replicas and previous.observed_generation is not None:
        woke = decision.replicas == 1
        outcome.events.append(Event("Normal", "Woke" if woke else "Slept",
                                    f"editor scaled to {decision.replicas} "
                                    f"({decision.cause if woke else decision.reason})"))
    _note_scale(rt, owner, previous, decision, annotations)

    plan: list[tuple[builders.Kind, str, builders.Manifest | None]]
    if mode == "lifecycle":  # only whether they should exist: no manifests built
        plan = [(builders.PVC, naming.child_name(owner.name, builders.ROLE_WORKSPACE), {})]
        if queues.input and queues.output and queues.dlq:
            plan.append((builders.DEPLOYMENT,
                         naming.child_name(owner.name, builders.ROLE_EDITOR), {}))
    else:
        plan = builders.children(owner, spec, queues, decision.replicas, settings)
        if parts[ConditionType.IDENTITY_READY].ok is not True:
            # EKS gives a pod its identity when the pod is created: no editor pod before the
            # association exists (one already running keeps its identity once it is back).
            plan = [child for child in plan if child[0] is not builders.DEPLOYMENT]
            parts[ConditionType.WORKLOAD_READY] = Part(
                None, "WaitingForIdentity", "the editor needs its AWS identity (IdentityReady)")
    if not any(kind is builders.DEPLOYMENT for kind, _, _ in plan):
        parts.setdefault(ConditionType.WORKLOAD_READY, Part(None, "WaitingForQueues",
                                                            "the editor needs its queue URLs"))
    if light:  # a drift tick: children that must not exist were removed by a full reconcile
        plan = [(kind, name, manifest) for kind, name, manifest in plan if manifest is not None]
    results = await asyncio.gather(*(
        _lifecycle_child(rt, kind, owner, name, manifest, decision.replicas)
        if mode == "lifecycle" else
        apply_child(kube, kind, owner, name, manifest, fresh=fresh)
        for kind, name, manifest in plan
    ), return_exceptions=True)
    live_children: dict[str, Mapping[str, Any] | None] = {}
    verified: dict[tuple[str, str, str], str] | None = {} if mode == "full" else None
    for (kind, name, _), result in zip(plan, results, strict=True):
        part_kind = PARTS_BY_KIND[kind.kind]
        if isinstance(result, KubeError):
            permanent = not result.transient or result.reason == "ChildConflict"
            reason = "ChildConflict" if result.reason == "ChildConflict" else (
                "Rejected" if result.status == 422 else "ApplyFailed")
            parts[part_kind] = Part(False, reason, f"{kind.kind} {name}: {result.message}",
                                    permanent=permanent)
            outcome.error_reason = outcome.error_reason or reason
            if not permanent:
                transient.append(None)
            continue
        if isinstance(result, BaseException):
            raise result
        live, _ = result
        version = child_version(kind.kind, live) if live is not None else None
        if verified is not None and version:
            verified[(kind.kind, owner.namespace, name)] = str(version)
        elif live is not None:
            verified = None
        if kind is builders.DEPLOYMENT or kind is builders.PVC:
            live_children[kind.kind] = live
            if live is not None:  # seen here: its watch event (e.g. our own create) is no news
                rt.child_seen[(kind.kind, owner.namespace, name)] = fingerprint(kind.kind, live)
                if mode == "full":  # lifecycle reconciles must not see an older one after this
                    rt.observed.wrote(kind.kind, live)
            continue
        if parts.get(part_kind, Part(True, "")).ok is not True:
            continue
        part = Part(True, "Applied", "")
        if part_kind == ConditionType.ROUTING_READY:
            part = Part(True, "Routed" if spec.sessions else "NoSessions",
                        f"{len(spec.sessions)} session path(s)")
        if kind is builders.SERVICE_ACCOUNT and part_kind in parts:
            continue
        parts[part_kind] = part
    complete = not transient and outcome.error_reason is None and any(
        kind is builders.DEPLOYMENT for kind, _, _ in plan)
    wanted = sum(1 for _, _, manifest in plan if manifest is not None)
    if verified is not None and complete and len(verified) == wanted:
        rt.verified[owner.uid] = verified
    elif mode == "full":  # a lifecycle reconcile checks no drift: what was verified stands
        rt.verified.pop(owner.uid, None)
    observed = await observe_children(
        rt, owner, live_children.get(builders.DEPLOYMENT.kind),
        live_children.get(builders.PVC.kind), decision.replicas, previous, now,
        watched_pods=mode == "lifecycle")
    for part_kind, part in observed.items():
        kept = parts.get(part_kind)
        if kept is None or kept.ok is True:  # an apply problem says more than an observation
            parts[part_kind] = part
    _note_available(rt, owner, parts.get(ConditionType.WORKLOAD_READY))

    report = Report(
        generation=generation if mode == "full" else previous.observed_generation,
        parts=parts,
        queues=queues,
        replicas=decision.replicas,
        sessions=len(spec.sessions),
        container_id=naming.container_id(spec.client_id, spec.project_id, spec.user_id),
        preview_base_path=builders.preview_base(settings),
        last_activity=decision.last_activity.replace(microsecond=0),
    )
    outcome.status = compute_status(previous, report, now)
    if transient:
        explicit = [d for d in transient if d is not None]
        backoff = min(settings.retry_base_delay_seconds * 2 ** min(retry, 10),
                      settings.retry_max_delay_seconds)
        outcome.retry_in = max([backoff, *explicit])
    return await _report(rt, owner, outcome)


async def _ensure_identity(rt: Runtime, owner: builders.Owner, outcome: Outcome,
                           transient: list[float | None]) -> Part:
    """IdentityReady: the environment's EKS Pod Identity association, created or corrected
    only when it differs (identity.py); unmanaged modes report how editors get AWS access."""
    want = identity.desired(rt.settings, owner.namespace, owner.name, owner.uid)
    if want is None or rt.eks is None:
        return identity.unmanaged(rt.settings, owner.namespace, owner.name)
    result = await identity.ensure(rt.eks, want)
    if result.failure is None and result.part.ok is True:
        rt.identity_checked[owner.uid] = asyncio.get_running_loop().time()
    else:
        rt.identity_checked.pop(owner.uid, None)
    if result.failure is not None:
        outcome.error_reason = outcome.error_reason or result.failure.reason
        if result.failure.transient:
            transient.append(result.failure.delay)
    elif result.part.ok is False:
        outcome.error_reason = outcome.error_reason or result.part.reason
    if result.action == "create":  # part of creating an environment: a log line, no Event
        LOG.info("%s/%s: %s", owner.namespace, owner.name, result.part.message)
    elif result.action == "update":
        outcome.events.append(Event("Normal", "IdentityUpdated", result.part.message))
    return result.part


def _decide(spec: EditEnvironmentSpec, meta: Mapping[str, Any], status: EditEnvironmentStatus,
            busy: bool | None, now: datetime) -> lifecycle.Decision:
    annotations = meta.get("annotations") or {}
    return lifecycle.decide(
        spec,
        lifecycle.Signals(
            created=lifecycle.parse_timestamp(meta.get("creationTimestamp")) or now,
            last_activity=status.last_activity,
            wake_requested=lifecycle.parse_timestamp(annotations.get(ANNOTATION_WAKE)),
            activity=lifecycle.parse_timestamp(annotations.get(ANNOTATION_ACTIVITY)),
            queue_busy=busy,
        ),
        now,
    )


async def _lifecycle_child(
    rt: Runtime,
    kind: builders.Kind,
    owner: builders.Owner,
    name: str,
    manifest: builders.Manifest | None,
    replicas: int,
) -> tuple[Mapping[str, Any] | None, int]:
    """One child as the watch last showed it (read only when the watch has not shown it); for
    the Deployment, set only spec.replicas when it differs (a missing child is left to the full
    reconcile's drift tick, which recreates it)."""
    live: Mapping[str, Any] | None = rt.observed.get(kind.kind, owner.namespace, name)
    if live is None:
        live = await rt.client().get(kind, owner.namespace, name)
        if live is not None:
            rt.observed.seen(kind.kind, live)
    if kind is not builders.DEPLOYMENT or live is None or manifest is None:
        return live, 0
    if int((live.get("spec") or {}).get("replicas", 1)) == replicas:
        return live, 0
    try:
        patched = await rt.client().patch(kind, owner.namespace, name,
                                          {"spec": {"replicas": replicas}})
    except KubeError as error:
        if error.status == 404:  # deleted since the watch showed it: the drift tick recreates
            rt.observed.seen(kind.kind, live, deleted=True)
            return None, 0
        raise
    rt.observed.wrote(kind.kind, patched)
    verified = rt.verified.get(owner.uid)
    key = (kind.kind, owner.namespace, name)
    if verified is not None and verified.get(key) == child_version(kind.kind, live):
        verified[key] = child_version(kind.kind, patched)  # in sync before; only scaled now
    return patched, 1


def _note_scale(
    rt: Runtime,
    owner: builders.Owner,
    previous: EditEnvironmentStatus,
    decision: lifecycle.Decision,
    annotations: Mapping[str, str],
) -> None:
    """Count wakes and sleeps; remember when a wake started (for latency and stuck starts)."""
    before = previous.replicas if previous.observed_generation is not None else 0
    if decision.replicas == 1 and before == 0:
        rt.metrics.wakes.labels(reason=decision.cause).inc()
        signal = time.time()
        if decision.cause == "WakeRequest":
            requested = lifecycle.parse_timestamp(annotations.get(ANNOTATION_WAKE))
            signal = min(signal, requested.timestamp()) if requested else signal
        rt.starting[owner.uid] = (time.monotonic(), signal, decision.cause)
    elif decision.replicas == 0:
        if before == 1:
            rt.metrics.sleeps.labels(reason=decision.reason).inc()
        rt.starting.pop(owner.uid, None)


def _note_available(rt: Runtime, owner: builders.Owner, workload: Part | None) -> None:
    if workload is None or workload.ok is not True:
        return
    started = rt.starting.pop(owner.uid, None)
    if started is None:
        return
    began, signal, cause = started
    rt.metrics.starting.observe(time.monotonic() - began)
    rt.metrics.wake_latency.labels(reason=cause).observe(max(0.0, time.time() - signal))


def stuck_count(rt: Runtime) -> int:
    """Environments woken longer than the start timeout ago and still not available."""
    limit = time.monotonic() - rt.settings.start_timeout_seconds
    return sum(1 for began, _, _ in rt.starting.values() if began < limit)


async def _report(rt: Runtime, owner: builders.Owner, outcome: Outcome) -> Outcome:
    """Write the status (once, only when it changed) and note the transition."""
    rt.metrics.set_phase(owner.uid, outcome.status.phase)
    rt.metrics.set_degraded(owner.uid, any(
        c.type == ConditionType.DEGRADED and c.status == "True"
        for c in outcome.status.conditions))
    if outcome.status == outcome.previous:
        return outcome
    patch = {"status": outcome.status.model_dump(mode="json", by_alias=True)}
    try:
        rt.latest.seen(await rt.client().patch(builders.EDIT_ENVIRONMENT, owner.namespace,
                                               owner.name, patch, subresource="status"))
        outcome.written = True
    except KubeError as error:
        if error.status != 404:
            raise
    change = transition(outcome.previous, outcome.status)
    scaled = next((e for e in outcome.events if e.reason in ("Woke", "Slept")), None)
    if change is not None and scaled is not None and outcome.status.phase in (
            Phase.STARTING, Phase.SLEEPING):
        scaled.message += f"; {change}"  # one Event per wake or sleep, not two
    elif change is not None:
        warning = outcome.status.phase == Phase.FAILED
        outcome.events.append(Event("Warning" if warning else "Normal", str(outcome.status.phase),
                                    f"{change}: {outcome.status.message or 'ok'}"))
    return outcome
