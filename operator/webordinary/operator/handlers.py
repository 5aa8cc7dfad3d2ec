"""kopf registrations: every trigger runs the one reconcile; deletion runs the cleanup."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

import kopf

from webordinary.contracts import naming
from webordinary.contracts.environment import (
    ANNOTATION_RELEASE_FINALIZER,
    FINALIZER,
    GROUP,
    PLURAL,
    VERSION,
    ConditionType,
    DeletionPolicy,
    Phase,
)
from webordinary.operator import builders
from webordinary.operator.adapters.kube import KubeClient, KubeError
from webordinary.operator.adapters.sqs import Owner as QueueOwner
from webordinary.operator.adapters.sqs import SqsAdapter, SqsFailure
from webordinary.operator.metrics import Metrics
from webordinary.operator.reconcile import Outcome, Runtime, previous_status, reconcile
from webordinary.operator.settings import OperatorSettings
from webordinary.operator.status import Part, with_condition

RESOURCE = (GROUP, VERSION, PLURAL)


def configure(kopf_settings: kopf.OperatorSettings, settings: OperatorSettings) -> None:
    """Bookkeeping in annotations (status belongs to the reconcile), our finalizer name."""
    kopf_settings.persistence.finalizer = FINALIZER
    kopf_settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    kopf_settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    # Our status write lands before kopf's own annotation patch; if that patch's watch event is
    # late (a loaded API server), kopf must not act on the older body (it would look unhandled).
    kopf_settings.persistence.consistency_timeout = 30.0
    kopf_settings.posting.level = logging.INFO
    kopf_settings.peering.standalone = True
    kopf_settings.watching.server_timeout = 600
    kopf_settings.networking.request_timeout = 60


def now() -> datetime:
    return datetime.now(UTC)


def _post(body: kopf.Body, outcome: Outcome) -> None:
    for event in outcome.events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message[:1000])


async def run_reconcile(
    rt: Runtime, body: kopf.Body, trigger: str, *, fresh: bool, retry: int
) -> None:
    """Serialize per environment, measure, post events, turn transient trouble into a retry."""
    started = datetime.now(UTC)
    uid = body.metadata.uid or ""
    loop = asyncio.get_running_loop()
    async with rt.lock(uid):
        recent = loop.time() - rt.last_done.get(uid, float("-inf"))
        if trigger == "timer" and recent < rt.settings.drift_interval_seconds * 0.9:
            return  # another trigger reconciled it moments ago
        try:
            outcome = await reconcile(rt, body, fresh=fresh, now=now(), retry=retry,
                                      light=trigger == "timer")
            rt.last_done[uid] = loop.time()
        except KubeError as error:
            rt.metrics.errors.labels(reason="KubeError").inc()
            raise kopf.TemporaryError(
                str(error), delay=rt.settings.retry_base_delay_seconds
            ) from error
        finally:
            elapsed = (datetime.now(UTC) - started).total_seconds()
            rt.metrics.duration.labels(trigger=trigger).observe(elapsed)
    if outcome.error_reason:
        rt.metrics.errors.labels(reason=outcome.error_reason).inc()
    _post(body, outcome)
    if outcome.retry_in is not None:
        raise kopf.TemporaryError(
            f"waiting: {outcome.status.message or outcome.error_reason}", delay=outcome.retry_in
        )


async def cleanup(rt: Runtime, body: kopf.Body, retry: int, logger: Any) -> None:
    """Delete queues and (if asked) the workspace; bounded fast retries, then Degraded."""
    meta = body.metadata
    annotations = meta.annotations or {}
    if annotations.get(ANNOTATION_RELEASE_FINALIZER) == "true":
        kopf.warn(body, reason="FinalizerReleased", message="released by annotation; "
                  "queues and workspace may remain")
        return
    spec = body.spec
    owner = QueueOwner(meta.namespace or "", meta.name or "", meta.uid or "")
    previous = previous_status(body.get("status"))
    kube = rt.client()
    if retry == 0 and previous.phase != Phase.TERMINATING:
        await _write_status(kube, owner, previous.model_copy(update={"phase": Phase.TERMINATING}))
    queue_policy = (spec.get("queues") or {}).get("deletionPolicy", DeletionPolicy.DELETE)
    storage_policy = (spec.get("storage") or {}).get("deletionPolicy", DeletionPolicy.RETAIN)
    try:
        if queue_policy == DeletionPolicy.DELETE and spec.get("clientId"):
            names = naming.queue_names(spec["clientId"], spec["projectId"], spec["userId"])
            deleted = await rt.sqs.delete_queues(names, owner)
            logger.info(f"deleted queues: {deleted}")
        if storage_policy == DeletionPolicy.DELETE:
            await kube.delete(builders.PVC, owner.namespace,
                              naming.child_name(owner.name, builders.ROLE_WORKSPACE))
    except (SqsFailure, KubeError) as error:
        reason = getattr(error, "reason", "CleanupFailed") or "CleanupFailed"
        rt.metrics.errors.labels(reason=f"Cleanup{reason}").inc()
        settings = rt.settings
        if retry < settings.cleanup_max_retries:
            delay = min(settings.retry_base_delay_seconds * 2 ** retry,
                        settings.retry_max_delay_seconds)
            raise kopf.TemporaryError(f"cleanup failed: {error}", delay=delay) from error
        message = (f"cleanup failed {retry + 1} times ({error}); set annotation "
                   f"{ANNOTATION_RELEASE_FINALIZER}=true to let the environment go")
        if retry == settings.cleanup_max_retries:
            kopf.warn(body, reason="CleanupFailed", message=message[:1000])
            degraded = with_condition(previous, ConditionType.DEGRADED,
                                      Part(True, "CleanupFailed", message), now(),
                                      Phase.TERMINATING)
            await _write_status(kube, owner, degraded)
        raise kopf.TemporaryError(message, delay=settings.cleanup_slow_retry_seconds) from error
    rt.metrics.set_phase(owner.uid, None)
    rt.locks.pop(owner.uid, None)
    rt.last_done.pop(owner.uid, None)


async def _write_status(kube: KubeClient, owner: QueueOwner, status: Any) -> None:
    try:
        await kube.patch(builders.EDIT_ENVIRONMENT, owner.namespace, owner.name,
                         {"status": status.model_dump(mode="json", by_alias=True)},
                         subresource="status")
    except KubeError as error:
        if error.status != 404:
            raise


async def release(rt: Runtime, body: kopf.Body) -> None:
    """An SRE's release annotation on a stuck deletion drops our finalizer at once."""
    meta = body.metadata
    finalizers = list(meta.get("finalizers") or [])
    if not meta.get("deletionTimestamp") or FINALIZER not in finalizers:
        return
    patch = {"metadata": {
        "finalizers": [f for f in finalizers if f != FINALIZER],
        "resourceVersion": meta.get("resourceVersion"),
    }}
    try:
        await rt.client().patch(builders.EDIT_ENVIRONMENT, meta.namespace or "", meta.name or "",
                                patch)
    except KubeError as error:
        if error.status not in (404, 409):
            raise


def login(config: OperatorSettings, **kwargs: Any) -> kopf.ConnectionInfo:
    """The emulator URL for local runs, else in-cluster service account or kubeconfig."""
    if config.kube_api_url:
        return kopf.ConnectionInfo(
            server=config.kube_api_url, insecure=True, scheme="Bearer", token="dummy"
        )
    info = kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)
    if info is None:
        raise kopf.LoginError("no service account and no kubeconfig to log in with")
    return info


def register(registry: kopf.OperatorRegistry, settings: OperatorSettings) -> Runtime:
    """Register every handler on `registry` (a fresh one per test) and return the runtime."""
    rt = Runtime(settings=settings, sqs=SqsAdapter(settings), metrics=Metrics())

    @kopf.on.startup(registry=registry)
    async def _startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure(settings, rt.settings)
        if rt.settings.metrics_port is not None:
            rt.metrics.serve(rt.settings.metrics_host, rt.settings.metrics_port)

    @kopf.on.login(registry=registry)
    async def _login(**kwargs: Any) -> kopf.ConnectionInfo:
        info = login(rt.settings, **kwargs)
        if rt.kube is not None:
            await rt.kube.close()
        rt.kube = KubeClient(info)
        return info

    @kopf.on.cleanup(registry=registry)
    async def _cleanup(**_: Any) -> None:
        if rt.kube is not None:
            await rt.kube.close()
        rt.sqs.close()

    @kopf.on.create(*RESOURCE, registry=registry, id="reconcile-create")
    async def _create(body: kopf.Body, retry: int, **_: Any) -> None:
        # Fresh (create children without reading first) only for a never-reconciled object.
        fresh = retry == 0 and not (body.get("status") or {}).get("observedGeneration")
        await run_reconcile(rt, body, "create", fresh=fresh, retry=retry)

    @kopf.on.update(*RESOURCE, registry=registry, id="reconcile-update")
    async def _update(body: kopf.Body, retry: int, **_: Any) -> None:
        await run_reconcile(rt, body, "update", fresh=False, retry=retry)

    @kopf.on.resume(*RESOURCE, registry=registry, id="reconcile-resume")
    async def _resume(body: kopf.Body, retry: int, **_: Any) -> None:
        await run_reconcile(rt, body, "resume", fresh=False, retry=retry)

    @kopf.timer(*RESOURCE, registry=registry, id="drift",
                interval=settings.drift_interval_seconds,
                initial_delay=settings.drift_initial_delay())
    async def _drift(body: kopf.Body, **_: Any) -> None:
        if body.metadata.get("deletionTimestamp"):
            return
        await run_reconcile(rt, body, "timer", fresh=False, retry=0)

    @kopf.on.delete(*RESOURCE, registry=registry, id="cleanup")
    async def _delete(body: kopf.Body, retry: int, logger: Any, **_: Any) -> None:
        await cleanup(rt, body, retry, logger)

    @kopf.on.event(*RESOURCE, registry=registry, id="release",
                   annotations={ANNOTATION_RELEASE_FINALIZER: "true"})
    async def _release(body: kopf.Body, **_: Any) -> None:
        await release(rt, body)

    return rt
