"""One idempotent reconcile of an EditEnvironment: parse -> observe -> plan -> apply -> report."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from webordinary.contracts import naming
from webordinary.contracts.environment import (
    ANNOTATION_ACTIVITY,
    ANNOTATION_WAKE,
    KIND,
    ConditionType,
    EditEnvironmentSpec,
    EditEnvironmentStatus,
    Phase,
    QueueUrls,
)
from webordinary.operator import admission, builders, drift, lifecycle
from webordinary.operator.adapters.kube import KubeClient, KubeError
from webordinary.operator.adapters.sqs import Owner as QueueOwner
from webordinary.operator.adapters.sqs import SqsAdapter, SqsFailure
from webordinary.operator.metrics import Metrics
from webordinary.operator.settings import OperatorSettings
from webordinary.operator.status import Part, Report, compute_status, transition

PARTS_BY_KIND = {
    builders.PVC.kind: ConditionType.STORAGE_READY,
    builders.SERVICE_ACCOUNT.kind: ConditionType.WORKLOAD_READY,
    builders.DEPLOYMENT.kind: ConditionType.WORKLOAD_READY,
    builders.SERVICE.kind: ConditionType.ROUTING_READY,
    builders.INGRESS.kind: ConditionType.ROUTING_READY,
    builders.NETWORK_POLICY.kind: ConditionType.ROUTING_READY,
}


@dataclass
class Runtime:
    """What every handler shares: settings, adapters, metrics, per-environment locks."""

    settings: OperatorSettings
    sqs: SqsAdapter
    metrics: Metrics
    kube: KubeClient | None = None
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    last_done: dict[str, float] = field(default_factory=dict)  # uid -> loop time of last run

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


def parse_spec(raw: Any) -> tuple[EditEnvironmentSpec | None, str | None]:
    try:
        spec = EditEnvironmentSpec.model_validate(dict(raw or {}))
        builders.validate_spec(spec)
    except ValidationError as error:
        return None, describe_validation(error)
    except builders.SpecError as error:
        return None, str(error)
    return spec, None


def is_foreign(live: Mapping[str, Any], owner: builders.Owner) -> str | None:
    """Why an existing object with a child's name is not ours to change (None: it is)."""
    refs = live.get("metadata", {}).get("ownerReferences") or []
    controller = next((r for r in refs if r.get("controller")), None)
    if controller is not None and not (
        controller.get("kind") == KIND and controller.get("name") == owner.name
    ):
        return f"controlled by {controller.get('kind')}/{controller.get('name')}"
    return None


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
        if await kube.get(kind, owner.namespace, name) is None:
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


def _child_part(kind: builders.Kind, live: Mapping[str, Any] | None, replicas: int) -> Part:
    if kind is builders.PVC:
        phase = (live or {}).get("status", {}).get("phase") or "Pending"
        return Part(True, "Bound" if phase == "Bound" else "Provisioned", f"workspace PVC {phase}")
    if kind is builders.DEPLOYMENT:
        ready = int((live or {}).get("status", {}).get("readyReplicas") or 0)
        if replicas == 0:
            return Part(True, "ScaledToZero", "editor asleep (0 replicas)")
        return Part(True, "Scaled", f"editor at 1 replica, {ready} ready")
    return Part(True, "Applied", "")


async def reconcile(
    rt: Runtime,
    body: Mapping[str, Any],
    *,
    fresh: bool,
    now: datetime,
    retry: int = 0,
    light: bool = False,
) -> Outcome:
    """Bring one environment to its desired state and write its status once if it changed."""
    meta = body["metadata"]
    owner = builders.Owner(meta["namespace"], meta["name"], meta["uid"])
    generation = meta.get("generation")
    previous = previous_status(body.get("status"))
    spec, invalid = parse_spec(body.get("spec"))
    if spec is not None:
        invalid = await admission.problem(rt.client(), owner.namespace, spec, rt.settings)
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

    outcome = Outcome(previous, previous)
    parts: dict[ConditionType, Part] = {}
    transient: list[float | None] = []

    names = naming.queue_names(spec.client_id, spec.project_id, spec.user_id)
    queues: QueueUrls = previous.queues
    busy: bool | None = None
    try:
        queue_report = await rt.sqs.ensure_queues(
            names, previous.queues, spec.queues,
            QueueOwner(owner.namespace, owner.name, owner.uid), light=light,
        )
        queues, busy = queue_report.urls, queue_report.busy
        parts[ConditionType.QUEUES_READY] = Part(True, "Provisioned", "input, output and DLQ")
        if queue_report.created:
            outcome.events.append(Event("Normal", "QueuesCreated",
                                        ", ".join(queue_report.created)))
        if queue_report.adopted:
            outcome.events.append(Event("Normal", "QueuesAdopted",
                                        ", ".join(queue_report.adopted)))
    except SqsFailure as failure:
        parts[ConditionType.QUEUES_READY] = Part(False, failure.reason, str(failure),
                                                 permanent=not failure.transient)
        outcome.error_reason = failure.reason
        if failure.transient:
            transient.append(failure.delay)

    annotations = meta.get("annotations") or {}
    decision = lifecycle.decide(
        spec,
        lifecycle.Signals(
            created=lifecycle.parse_timestamp(meta.get("creationTimestamp")) or now,
            last_activity=previous.last_activity,
            wake_requested=lifecycle.parse_timestamp(annotations.get(ANNOTATION_WAKE)),
            editor_activity=lifecycle.parse_timestamp(annotations.get(ANNOTATION_ACTIVITY)),
            queue_busy=busy,
        ),
        now,
    )
    if previous.replicas != decision.replicas and previous.observed_generation is not None:
        outcome.events.append(Event("Normal", "Woke" if decision.replicas else "Slept",
                                    f"editor scaled to {decision.replicas} ({decision.reason})"))

    kube = rt.client()
    plan = builders.children(owner, spec, queues, decision.replicas, settings)
    if not any(kind is builders.DEPLOYMENT for kind, _, _ in plan):
        parts[ConditionType.WORKLOAD_READY] = Part(None, "WaitingForQueues",
                                                   "the editor needs its queue URLs")
    results = await asyncio.gather(*(
        apply_child(kube, kind, owner, name, manifest, fresh=fresh)
        for kind, name, manifest in plan
    ), return_exceptions=True)
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
        if parts.get(part_kind, Part(True, "")).ok is not True:
            continue
        part = _child_part(kind, live, decision.replicas)
        if part_kind == ConditionType.ROUTING_READY:
            part = Part(True, "Routed" if spec.sessions else "NoSessions",
                        f"{len(spec.sessions)} session path(s)")
        if kind is builders.SERVICE_ACCOUNT and part_kind in parts:
            continue
        parts[part_kind] = part

    report = Report(
        generation=generation,
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


async def _report(rt: Runtime, owner: builders.Owner, outcome: Outcome) -> Outcome:
    """Write the status (once, only when it changed) and note the transition."""
    rt.metrics.set_phase(owner.uid, outcome.status.phase)
    if outcome.status == outcome.previous:
        return outcome
    patch = {"status": outcome.status.model_dump(mode="json", by_alias=True)}
    try:
        await rt.client().patch(builders.EDIT_ENVIRONMENT, owner.namespace, owner.name, patch,
                                subresource="status")
        outcome.written = True
    except KubeError as error:
        if error.status != 404:
            raise
    change = transition(outcome.previous, outcome.status)
    if change is not None:
        warning = outcome.status.phase == Phase.FAILED
        outcome.events.append(Event("Warning" if warning else "Normal", str(outcome.status.phase),
                                    f"{change}: {outcome.status.message or 'ok'}"))
    return outcome
