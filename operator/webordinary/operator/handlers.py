"""kopf registrations: every trigger runs the one reconcile; deletion runs the cleanup."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import kopf

from webordinary.contracts import naming
from webordinary.contracts.environment import (
    ANNOTATION_ACTIVITY,
    ANNOTATION_RELEASE_FINALIZER,
    ANNOTATION_WAKE,
    FINALIZER,
    GROUP,
    KIND,
    LABEL_ENVIRONMENT,
    PLURAL,
    VERSION,
    ConditionType,
    DeletionPolicy,
    Phase,
)
from webordinary.operator import builders, events, identity, peering
from webordinary.operator.adapters.eks import EksAdapter
from webordinary.operator.adapters.kube import KubeClient, KubeError
from webordinary.operator.adapters.sqs import Owner as QueueOwner
from webordinary.operator.adapters.sqs import SqsAdapter, SqsFailure
from webordinary.operator.childwatch import WATCHED, ChildWatch
from webordinary.operator.looplag import LagProbe, StallReporter, on_signal
from webordinary.operator.metrics import Metrics
from webordinary.operator.observed import child_version
from webordinary.operator.reconcile import (
    Mode,
    Outcome,
    Runtime,
    fingerprint,
    lifecycle_ready,
    previous_status,
    reconcile,
    status_of,
    steady,
    stuck_count,
)
from webordinary.operator.settings import OperatorSettings
from webordinary.operator.standby import Standby
from webordinary.operator.status import Part, with_condition
from webordinary.operator.wakeups import Deadlines, Key, SleepingQueues

RESOURCE = (GROUP, VERSION, PLURAL)
# kopf's bookkeeping lives under a prefix of its own: kopf leaves every annotation under its
# storages' prefixes out of an object's essence, and wake/activity annotations must count.
KOPF_PREFIX: Final = f"kopf.{GROUP}"
LEGACY_PREFIX: Final = GROUP  # where operators before 0.2 kept it
DIFFBASE_KEY: Final = "last-handled-configuration"
HANDLER_IDS: Final = ("reconcile-create", "reconcile-update", "reconcile-resume", "drift",
                      "cleanup", "release")
LEGACY_KEYS: Final = frozenset(
    f"{LEGACY_PREFIX}/{key}" for key in ("kopf-managed", DIFFBASE_KEY, *HANDLER_IDS)
)
LIFECYCLE_ANNOTATIONS: Final = frozenset({ANNOTATION_WAKE, ANNOTATION_ACTIVITY})
# Out of kopf's essence: a wake or activity stamp is no spec change (no update handler, no
# bookkeeping write per stamp); `lifecycle_seen` notices them.
LIFECYCLE_FIELDS: Final = tuple(("metadata", "annotations", key)
                                for key in sorted(LIFECYCLE_ANNOTATIONS))
# Children whose status is the environment's status (the others: only their versions).
STATUS_KINDS: Final = frozenset({"Deployment", "PersistentVolumeClaim", "Pod"})
# Children the operator creates: one that is deleted is put back at once by a full reconcile
# (the editor's pods come and go with its Deployment's scale).
RECREATED_KINDS: Final = frozenset({"Deployment", "PersistentVolumeClaim", "ServiceAccount",
                                    "Service", "NetworkPolicy"})
# How early a sleep deadline reads the environment and its input queue (see `deadline`): 2 s,
# plus 3 ms (about the CPU of those reads) per other deadline in the 10 s before it, at most 8 s.
DEADLINE_LEAD: Final = 2.0
DEADLINE_CROWD_LEAD: Final = 0.003
DEADLINE_MAX_LEAD: Final = 8.0


def plain_copy(value: Any) -> Any:
    """A deep copy of JSON data (dicts, lists, scalars): what copy.deepcopy does for it, at a
    fraction of the CPU."""
    if isinstance(value, dict):  # decoded JSON: no abstract-class check per value
        return {k: plain_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain_copy(v) for v in value]
    if value is None or isinstance(value, str | int | float):
        return value
    if isinstance(value, Mapping):
        return {k: plain_copy(v) for k, v in value.items()}
    return value


def _without_legacy(body: Mapping[str, Any]) -> kopf.Body:
    raw = dict(body)
    annotations = dict((raw.get("metadata") or {}).get("annotations") or {})
    if LEGACY_KEYS.isdisjoint(annotations):
        return body if isinstance(body, kopf.Body) else kopf.Body(raw)  # type: ignore[arg-type]
    raw["metadata"] = {**raw["metadata"],
                       "annotations": {k: v for k, v in annotations.items()
                                       if k not in LEGACY_KEYS}}
    return kopf.Body(raw)  # type: ignore[arg-type]


class DiffBaseStorage(kopf.AnnotationsDiffBaseStorage):
    """kopf's last-handled state under KOPF_PREFIX. An object last handled by an older
    operator still has it (and kopf's marker, which hides all `webordinary.dev/` annotations)
    under LEGACY_PREFIX: it is read from there once and removed with the next store."""

    def __init__(self) -> None:
        super().__init__(prefix=KOPF_PREFIX, key=DIFFBASE_KEY, ignored_fields=LIFECYCLE_FIELDS)
        self._legacy = kopf.AnnotationsDiffBaseStorage(prefix=LEGACY_PREFIX, key=DIFFBASE_KEY)
        # The annotation keys, formed once: kopf marks keys only for a Deployment's ReplicaSets
        # (CollisionEvadingConvention), never for an EditEnvironment; forming them per event
        # was a third of reading the diff-base.
        self._keys = tuple(self.make_keys(self.key))
        self._all_keys = self._keys + tuple(self._legacy.make_keys(self._legacy.key))

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> Any:
        # kopf deep-copies the whole body per event (status writes included) to keep spec,
        # labels and annotations: the copy was most of its per-event CPU. The same essence,
        # built from plain JSON copies of only those (a test holds it equal to kopf's).
        raw = dict(body)  # the plain JSON, read once through kopf's views
        meta = raw.get("metadata") or {}
        if not LEGACY_KEYS.isdisjoint(meta.get("annotations") or {}):
            body = _without_legacy(body)
            raw = dict(body)
            meta = raw.get("metadata") or {}
        if extra_fields:
            return super().build(body=body, extra_fields=extra_fields)
        essence: dict[str, Any] = {k: plain_copy(v) for k, v in raw.items()
                                   if k not in ("apiVersion", "kind", "metadata", "status")}
        annotations = dict(meta.get("annotations") or {})
        if annotations:
            marked = self._detect_marked_prefixes(annotations)
            own = set(self._keys)
            annotations = {
                k: v for k, v in annotations.items()
                if k not in own and k not in LIFECYCLE_ANNOTATIONS
                and k != "kubectl.kubernetes.io/last-applied-configuration"
                and not any(k.startswith(f"{prefix}/") for prefix in marked)}
        metadata = {k: v for k, v in (("labels", dict(meta.get("labels") or {})),
                                      ("annotations", annotations)) if v}
        if metadata:
            essence["metadata"] = metadata
        return essence

    def fetch(self, *, body: kopf.Body) -> Any:
        # kopf's own fetch reads through its mapping views, twice when nothing is stored
        # (ours, then the legacy prefix's): the same lookups on the plain annotations.
        meta = dict(body).get("metadata") or {}
        annotations = meta.get("annotations") or {}
        for key in self._all_keys:
            encoded = annotations.get(key)
            decoded = json.loads(encoded) if encoded is not None else None
            if decoded is not None:
                return decoded
        return None

    def store(self, *, body: kopf.Body, patch: Any, essence: Any) -> None:
        super().store(body=body, patch=patch, essence=essence)
        for key in LEGACY_KEYS & set(body.metadata.annotations):
            patch.metadata.annotations[key] = None


class ProgressStorage(kopf.AnnotationsProgressStorage):
    """kopf's per-handler progress under KOPF_PREFIX; its essence clean-up (run for every event)
    without kopf's deep copy."""

    def __init__(self) -> None:
        super().__init__(prefix=KOPF_PREFIX)

    def clear(self, *, essence: Any) -> Any:
        # A new essence sharing the unchanged parts: kopf builds `essence` fresh per event
        # (DiffBaseStorage.build) and only reads both.
        meta = essence.get("metadata") or {}
        annotations = meta.get("annotations") or {}
        ours = [k for k in annotations if k.startswith(f"{KOPF_PREFIX}/")]
        if not ours:
            return dict(essence)
        kept = {k: v for k, v in annotations.items() if k not in ours}
        meta = {k: v for k, v in {**meta, "annotations": kept}.items() if v}
        cleared = {k: v for k, v in essence.items() if k != "metadata"}
        if meta:
            cleared["metadata"] = meta
        return cleared


async def migrate_bookkeeping(rt: Runtime, body: Mapping[str, Any]) -> None:
    """Move an older operator's bookkeeping (LEGACY_PREFIX) to KOPF_PREFIX once, as kopf's
    next store would (wake and activity stamps no longer make kopf store anything)."""
    meta = body.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    legacy = LEGACY_KEYS & set(annotations)
    if not legacy:
        return
    patch: dict[str, str | None] = dict.fromkeys(legacy)
    old, new = f"{LEGACY_PREFIX}/{DIFFBASE_KEY}", f"{KOPF_PREFIX}/{DIFFBASE_KEY}"
    if annotations.get(old) and not annotations.get(new):
        patch[new] = annotations[old]
    try:
        await rt.client().patch(builders.EDIT_ENVIRONMENT, meta.get("namespace") or "",
                                meta.get("name") or "", {"metadata": {"annotations": patch}})
    except KubeError as error:
        if error.status != 404:
            raise


def configure(kopf_settings: kopf.OperatorSettings, settings: OperatorSettings) -> None:
    """Bookkeeping in annotations under kopf's own prefix (status belongs to the reconcile)."""
    kopf_settings.persistence.finalizer = FINALIZER
    kopf_settings.persistence.progress_storage = ProgressStorage()
    kopf_settings.persistence.diffbase_storage = DiffBaseStorage()
    # Our status write lands before kopf's own annotation patch; if that patch's watch event is
    # late (a loaded API server), kopf must not act on the older body (it would look unhandled).
    # At 5,000 environments created at once kopf's queue ran more than 30 s behind: every
    # environment's create handler ran a second time on the stale body (+1 status write, +1
    # Event, +1 kopf patch each). Waiting longer costs nothing while the event is on its way.
    kopf_settings.persistence.consistency_timeout = 300.0
    # Events for what a person needs: kopf's own per-handler success messages ("Handler ...
    # succeeded", "Creation is processed") would be two API writes per environment and change;
    # its warnings and errors (a failing handler) are still posted. The operator's own Events
    # (events.py) are not subject to this level.
    kopf_settings.posting.level = logging.WARNING
    peering.configure(kopf_settings, settings)
    kopf_settings.watching.server_timeout = 600
    kopf_settings.networking.request_timeout = 60


def now() -> datetime:
    return datetime.now(UTC)


def _post(rt: Runtime, body: Mapping[str, Any], outcome: Outcome) -> None:
    """The outcome's Events, posted in the background (as kopf's poster did)."""
    for event in outcome.events:
        rt.spawn(events.post(rt.client(), body, event.type, event.reason, event.message))


def lifecycle_only(old: Any, new: Any) -> bool:
    """Whether an update changed nothing but wake/activity annotations."""
    if old is None or new is None:
        return False

    def strip(essence: Any) -> Any:
        essence = copy.deepcopy(dict(essence))
        meta = essence.get("metadata") or {}
        annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                       if k not in LIFECYCLE_ANNOTATIONS}
        meta = {**meta, "annotations": annotations}
        essence["metadata"] = {k: v for k, v in meta.items() if v}
        return {k: v for k, v in essence.items() if v}

    return bool(strip(old) == strip(new))


async def run_reconcile(
    rt: Runtime, body: Mapping[str, Any], trigger: str, *, fresh: bool, retry: int,
    mode: Mode = "full", queue_busy: bool | None = None, probe_queue: bool = False,
    current: bool = False, entered: Callable[[], None] | None = None,
) -> None:
    """Serialize per environment, measure, post events, turn transient trouble into a retry,
    and arm the next sleep deadline or queue look. `entered` is called once the environment's
    lock is taken (what the reconcile observes is from then on)."""
    started = datetime.now(UTC)
    uid = body["metadata"].get("uid") or ""
    loop = asyncio.get_running_loop()
    async with rt.lock(uid):
        if entered is not None:
            entered()
        if uid in rt.deleting:
            return  # a refresh that raced the deletion must not recreate children
        recent = loop.time() - rt.last_done.get(uid, float("-inf"))
        if trigger == "timer" and recent < rt.settings.drift_interval_seconds * 0.9:
            return  # another trigger reconciled it moments ago
        if trigger == "timer" and steady(rt, body):
            rt.last_done[uid] = loop.time()
            return
        try:
            outcome = await reconcile(rt, body, fresh=fresh, now=now(), retry=retry,
                                      light=trigger == "timer", mode=mode,
                                      queue_busy=queue_busy, probe_queue=probe_queue,
                                      current=current)
            if mode == "full":
                rt.last_done[uid] = loop.time()
        except KubeError as error:
            rt.metrics.errors.labels(reason="KubeError").inc()
            raise kopf.TemporaryError(
                str(error), delay=rt.settings.retry_base_delay_seconds
            ) from error
        finally:
            elapsed = (datetime.now(UTC) - started).total_seconds()
            rt.metrics.duration.labels(trigger=trigger).observe(elapsed)
        schedule(rt, body, outcome)
    if outcome.error_reason:
        rt.metrics.errors.labels(reason=outcome.error_reason).inc()
    _post(rt, body, outcome)
    if outcome.retry_in is not None:
        raise kopf.TemporaryError(
            f"waiting: {outcome.status.message or outcome.error_reason}", delay=outcome.retry_in
        )


def lifecycle_mark(meta: Mapping[str, Any]) -> tuple[Any, Any, Any, Any]:
    """What the watch last showed of an environment (`rt.marks`): its wake and activity
    stamps, generation and resourceVersion."""
    annotations = meta.get("annotations") or {}
    return (annotations.get(ANNOTATION_WAKE), annotations.get(ANNOTATION_ACTIVITY),
            meta.get("generation"), meta.get("resourceVersion"))


def lifecycle_seen(rt: Runtime, body: Mapping[str, Any], event: Any) -> bool:
    """What the watch shows of an environment, noted for every event (rt.latest, rt.marks);
    whether a wake or activity annotation changed, so the lifecycle reconcile must run now
    (kopf's update handler does not see them). The first sight of an object is left to the
    create and resume handlers; a stamp in the same event as a spec change to the update
    handler, which gets this very body. kopf's filter of the `lifecycle` handler: an event
    with no new stamp (nearly all: five per environment created) then costs no handler run,
    which was ~5 % of the operator's CPU in a creation burst. The same version asked about
    again gets the same answer."""
    meta = body.get("metadata") or {}
    uid = meta.get("uid") or ""
    if event == "DELETED":
        rt.marks.pop(uid, None)
        rt.stamped.pop(uid, None)
        rt.latest.forget((meta.get("namespace") or "", meta.get("name") or ""))
        return False
    mark = lifecycle_mark(meta)
    seen = rt.marks.get(uid)
    if seen == mark:
        return bool(rt.stamped.get(uid) == mark[3])
    rt.latest.seen(dict(body))
    rt.marks[uid] = mark
    if seen is None or seen[:2] == mark[:2] or seen[2] != mark[2] or \
            meta.get("deletionTimestamp"):
        rt.stamped.pop(uid, None)
        return False
    rt.stamped[uid] = mark[3]
    return True


async def lifecycle_event(rt: Runtime, body: Mapping[str, Any]) -> None:
    """The lifecycle reconcile for a changed wake or activity stamp (`lifecycle_seen`)."""
    meta = body.get("metadata") or {}
    rt.stamped.pop(meta.get("uid") or "", None)
    try:
        await run_reconcile(rt, body, "wake", fresh=False, retry=0, mode="lifecycle")
    except kopf.TemporaryError as error:  # an event handler is not retried by kopf: refresh
        logging.getLogger(__name__).info("%s/%s wake: %s", meta.get("namespace"),
                                         meta.get("name"), error)
        later(rt, (meta.get("namespace") or "", meta.get("name") or ""), error.delay or 1.0)


async def reawaken(rt: Runtime, after_pause: bool) -> None:
    """This replica became the active one: run the deadlines parked while it was paused and,
    after a pause, look again at every environment it has a clock for (the active peer may
    have woken or put them to sleep meanwhile)."""
    if rt.deadlines is None or rt.sleepers is None:
        return
    keys = set(rt.deadlines.parked)
    rt.deadlines.parked.clear()
    if after_pause:
        keys |= rt.deadlines.keys() | rt.sleepers.keys()
    limit = asyncio.Semaphore(16)

    async def one(key: Key) -> None:
        async with limit:
            await refresh(rt, key, "active", probe_queue=True)

    await asyncio.gather(*(one(key) for key in keys))


def later(rt: Runtime, key: Key, delay: float) -> None:
    """A lifecycle refresh of `key` after `delay` seconds (a retry outside kopf's handlers)."""
    async def run() -> None:
        await asyncio.sleep(delay)
        await refresh(rt, key, "retry")

    rt.spawn(run())


def schedule(rt: Runtime, body: Mapping[str, Any], outcome: Outcome) -> None:
    """Awake: a timer at the sleep deadline. Asleep (idle): the input queue is looked at once
    per wake_poll_interval. Suspended or deleted: neither."""
    meta = body["metadata"]
    key: Key = (meta["namespace"], meta["name"])
    deadlines, sleepers = rt.deadlines, rt.sleepers
    if deadlines is None or sleepers is None:
        return
    decision = outcome.decision
    rt.names[(key[0], builders.instance_label(key[1]))] = key[1]
    if decision is None or meta.get("deletionTimestamp"):
        forget(rt, key)
        return
    if decision.replicas == 1 and decision.sleeps_at is not None:
        sleepers.discard(key)
        deadlines.arm(key, decision.sleeps_at + timedelta(milliseconds=50))
        return
    deadlines.cancel(key)
    url = outcome.status.queues.input
    if decision.reason == "Idle" and url:
        sleepers.add(key, url)
    else:
        sleepers.discard(key)


def forget(rt: Runtime, key: Key) -> None:
    if rt.deadlines is not None:
        rt.deadlines.cancel(key)
    if rt.sleepers is not None:
        rt.sleepers.discard(key)


def coalesced(rt: Runtime, key: Key, mode: Mode = "lifecycle") -> bool:
    """Whether a refresh of `key` is running; it then runs once more when it is done (a full
    reconcile if any of the coalesced ones asked for one), unless it has not yet taken the
    environment's lock (`rt.refresh_pending`): then what it observes includes what the caller
    noted just before, and a lifecycle refresh asked for now would find nothing new. A new
    environment's PVC and Deployment change status moments apart: every one of them had a
    second, idle lifecycle reconcile (a third of its reconciles)."""
    if key in rt.refreshing:
        if mode == "lifecycle" and key in rt.refresh_pending:
            return True
        rt.refresh_again.add(key)
        if mode == "full":
            rt.refresh_full.add(key)
        return True
    return False


async def refresh(rt: Runtime, key: Key, trigger: str, *, queue_busy: bool | None = None,
                  probe_queue: bool = False, mode: Mode = "lifecycle",
                  read: Mapping[str, Any] | None = None, cached: bool = False) -> None:
    """A lifecycle reconcile of one environment outside kopf's handlers (sleep deadline, a
    message on a sleeping queue, a child's status); coalesced while one is running. `read`:
    the body as stored, read just before by the caller (else it is read here). `cached`: the
    newest version the operator has seen will do for a lifecycle reconcile (`known_body`; a
    decision to sleep still reads it)."""
    if coalesced(rt, key, mode):
        return
    rt.refreshing.add(key)
    try:
        while True:
            rt.refresh_again.discard(key)
            rt.refresh_full.discard(key)
            rt.refresh_pending.add(key)
            body, current = read, True
            if body is None and cached and mode == "lifecycle":
                body = await known_body(rt, key)
                if body is not None and not lifecycle_ready(body, status_of(rt, body)):
                    body = None  # a full reconcile follows: on the version as stored
                current = body is None
            if body is None:
                body = await current_body(rt, key)
            read = None
            if body is None or body["metadata"].get("deletionTimestamp"):
                forget(rt, key)
                return
            try:
                await run_reconcile(rt, body, trigger, fresh=False, retry=0, mode=mode,
                                    queue_busy=queue_busy, probe_queue=probe_queue,
                                    current=current,
                                    entered=lambda: rt.refresh_pending.discard(key))
            except kopf.TemporaryError as error:  # kopf's own triggers retry; note it here
                logging.getLogger(__name__).info("%s/%s %s: %s", *key, trigger, error)
            if key not in rt.refresh_again:
                return
            queue_busy, probe_queue = None, False
            mode = "full" if key in rt.refresh_full else "lifecycle"
    except KubeError as error:
        logging.getLogger(__name__).warning("%s/%s %s: %s", *key, trigger, error)
    finally:
        rt.refreshing.discard(key)
        rt.refresh_pending.discard(key)


async def deadline(rt: Runtime, key: Key, at: datetime) -> None:
    """A sleep deadline, its reads done ahead (DEADLINE_LEAD, more when deadlines crowd): the
    environment as stored and its input queue are read before `at`, and the reconcile decides
    on them at `at` (it compares with the clock: never earlier), unless the watch has shown
    another version of it than the one read (a newer stamp, spec or status: a reconcile wrote
    meanwhile), a reconcile of it is running, or a read failed: then it reads both again. At a
    thousand coincident deadlines every read used to queue behind the others' scale-downs
    (sleep p99 6 s late)."""
    body: Mapping[str, Any] | None = None
    busy: bool | None = None
    try:
        if key not in rt.refreshing:
            body = await current_body(rt, key)
            if body is None or body["metadata"].get("deletionTimestamp"):
                forget(rt, key)
                return
            url = ((body.get("status") or {}).get("queues") or {}).get("input")
            if url:
                busy = await rt.sqs.input_busy(url)
    except (KubeError, SqsFailure) as error:
        logging.getLogger(__name__).info("%s/%s deadline read ahead: %s", *key, error)
        body = None
    await asyncio.sleep(max(0.0, (at - now()).total_seconds()))
    if rt.deadlines is not None and rt.deadlines.when(key) != at:
        return  # moved (a newer stamp) or cancelled (asleep, deleted) while reading ahead
    if body is not None and busy is not None:
        meta = body["metadata"]
        if rt.marks.get(meta.get("uid") or "") == lifecycle_mark(meta) and \
                not reconciling(rt, body):
            await refresh(rt, key, "deadline", queue_busy=busy, read=body)
            return
    await refresh(rt, key, "deadline", probe_queue=True)


def reconciling(rt: Runtime, body: Mapping[str, Any]) -> bool:
    """Whether a reconcile of `body`'s environment is running (it holds the lock)."""
    lock = rt.locks.get(body["metadata"].get("uid") or "")
    return lock is not None and lock.locked()


async def after_reconcile(rt: Runtime, body: Mapping[str, Any] | None) -> bool:
    """Wait for a running reconcile of `body`'s environment to finish; whether one ran."""
    if body is None or not reconciling(rt, body):
        return False
    async with rt.locks[body["metadata"]["uid"]]:
        pass
    return True


async def known_body(rt: Runtime, key: Key) -> Mapping[str, Any] | None:
    """The newest version of the environment the operator has seen (rt.latest), taken after
    any reconcile of it that is running (whose status write it then holds); None when none
    was seen."""
    body = rt.latest.get(key)
    if await after_reconcile(rt, body):
        body = rt.latest.get(key)
    return body


async def current_body(rt: Runtime, key: Key) -> Mapping[str, Any] | None:
    """The environment as stored, read after any reconcile of it that is running: a body read
    before that reconcile's status write would look unreconciled (a full reconcile again)."""
    body = await rt.client().get(builders.EDIT_ENVIRONMENT, *key)
    if await after_reconcile(rt, body):
        body = await rt.client().get(builders.EDIT_ENVIRONMENT, *key)
    if body is not None:
        rt.latest.seen(body)
    return body


def owner_key(rt: Runtime, body: Mapping[str, Any]) -> Key | None:
    meta = body.get("metadata") or {}
    namespace = meta.get("namespace") or ""
    for ref in meta.get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") == KIND:
            return namespace, ref["name"]
    label = (meta.get("labels") or {}).get(LABEL_ENVIRONMENT)
    if not label:
        return None
    return namespace, rt.names.get((namespace, label), label)


def note_version(rt: Runtime, kind: str, body: Mapping[str, Any], event: Any) -> None:
    """Remember each child's version as its watch shows it (see reconcile.steady)."""
    if kind == "Pod":
        return
    meta = body.get("metadata") or {}
    key = (kind, meta.get("namespace") or "", meta.get("name") or "")
    if event == "DELETED":
        rt.child_versions.pop(key, None)
    elif meta.get("resourceVersion"):
        rt.child_versions[key] = child_version(kind, body)


def child_changed(rt: Runtime, kind: str, event: str | None, body: Mapping[str, Any]) -> None:
    """A child's watch event (childwatch): remember its version and what it shows; when a
    Deployment, PVC or editor pod changed what matters, refresh its environment's status (the
    first sight at start-up is left to the resume reconcile, which reads children). A child
    the operator creates that is gone (someone deleted it, or a re-list after 410 no longer
    shows it) is put back now by a full reconcile, not at the next drift tick (up to 300 s
    without its editor, routing or network policy); its environment's own deletion is not a
    reason (and a refresh stops when it reads an environment being deleted)."""
    note_version(rt, kind, body, event)
    gone = event == "DELETED"
    meta = body.get("metadata") or {}
    if kind in STATUS_KINDS:
        seen_key = (kind, meta.get("namespace") or "", meta.get("name") or "")
        rt.observed.seen(kind, body, deleted=gone)
        if gone:
            rt.child_seen.pop(seen_key, None)
        else:
            mark = fingerprint(kind, body)
            first = seen_key not in rt.child_seen
            if rt.child_seen.get(seen_key) == mark:
                return
            rt.child_seen[seen_key] = mark
            if first and event is None:
                return
    elif not gone:
        return
    key = owner_key(rt, body)
    if key is None:
        return
    if gone and kind in RECREATED_KINDS:
        if any(ref.get("uid") in rt.deleting for ref in meta.get("ownerReferences") or []):
            return
        if not coalesced(rt, key, "full"):
            rt.spawn(refresh(rt, key, f"deleted:{kind}", mode="full"))
    elif not coalesced(rt, key):  # checked here too: no task for a refresh already running
        rt.spawn(refresh(rt, key, f"child:{kind}", cached=True))


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
    rt.deleting.add(owner.uid)
    forget(rt, (owner.namespace, owner.name))
    async with rt.lock(owner.uid):  # let a running reconcile finish first
        pass
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
        want = identity.desired(rt.settings, owner.namespace, owner.name, owner.uid)
        if want is not None and rt.eks is not None:  # always ours to remove: AWS keeps it
            removed = await identity.remove(rt.eks, want)
            logger.info(f"deleted EKS Pod Identity associations: {removed}")
        if storage_policy == DeletionPolicy.DELETE:
            await kube.delete(builders.PVC, owner.namespace,
                              naming.child_name(owner.name, builders.ROLE_WORKSPACE))
    except (SqsFailure, identity.IdentityFailure, KubeError) as error:
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
            rt.metrics.set_degraded(owner.uid, True)
        raise kopf.TemporaryError(message, delay=settings.cleanup_slow_retry_seconds) from error
    rt.metrics.set_phase(owner.uid, None)
    rt.metrics.set_degraded(owner.uid, False)
    rt.locks.pop(owner.uid, None)
    rt.last_done.pop(owner.uid, None)
    rt.starting.pop(owner.uid, None)
    rt.marks.pop(owner.uid, None)
    rt.stamped.pop(owner.uid, None)
    rt.admitted.pop(owner.uid, None)
    rt.specs.pop(owner.uid, None)
    rt.identity_checked.pop(owner.uid, None)
    rt.latest.forget((owner.namespace, owner.name))
    rt.deleting.discard(owner.uid)


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
    rt = Runtime(settings=settings, sqs=SqsAdapter(settings), metrics=Metrics(),
                 eks=EksAdapter(settings) if settings.aws_identity() == "pod-identity" else None)
    standby = Standby(settings.peering_name, settings.watch_namespaces(),
                      min(5.0, settings.peering_lifetime_seconds / 6),
                      lambda after_pause: reawaken(rt, after_pause))
    children = ChildWatch(WATCHED, settings.watch_namespaces(), rt.client,
                          lambda kind, event, body: child_changed(rt, kind, event, body),
                          standby)
    lag = LagProbe(rt.metrics.loop_lag)
    stalls: list[StallReporter] = []  # made on the loop, at startup
    rt.synced = children.synced

    @kopf.on.startup(registry=registry)
    async def _startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure(settings, rt.settings)
        lag.start()
        stalls.append(StallReporter(asyncio.get_running_loop(),
                                    rt.settings.loop_stall_report_ms / 1000))
        on_signal(stalls[-1])
        rt.deadlines = Deadlines(lambda key, at: deadline(rt, key, at),
                                 may_act=lambda: standby.active, lead=DEADLINE_LEAD,
                                 crowd_lead=DEADLINE_CROWD_LEAD, max_lead=DEADLINE_MAX_LEAD)
        rt.sleepers = SleepingQueues(
            rt.settings.wake_poll_interval_seconds, rt.sqs.input_busy,
            lambda key, busy: refresh(rt, key, "message", queue_busy=True) if busy
            else refresh(rt, key, "queue-gone", mode="full"),
            concurrency=rt.settings.aws_concurrency, may_act=lambda: standby.active)
        rt.sleepers.start()
        rt.spawn(rt.sqs.keep_listing_fresh())
        standby.start(rt.client, lambda: settings.peering.priority)
        children.start()
        rt.metrics.stuck.set_function(lambda: stuck_count(rt))
        if rt.settings.metrics_port is not None:
            rt.metrics.serve(rt.settings.metrics_host, rt.settings.metrics_port)

    @kopf.on.login(registry=registry)
    async def _login(**kwargs: Any) -> kopf.ConnectionInfo:
        info = login(rt.settings, **kwargs)
        if rt.kube is not None:
            await rt.kube.close()
        # each child watch holds a connection for good (six per named namespace)
        rt.kube = KubeClient(info, connections=max(64, len(children.feeds) + 16))
        return info

    @kopf.on.cleanup(registry=registry)
    async def _cleanup(**_: Any) -> None:
        await children.stop()
        await lag.stop()
        for reporter in stalls:
            reporter.stop()
        for task in rt.tasks:
            task.cancel()
        await standby.stop()
        if rt.deadlines is not None:
            rt.deadlines.close()
        if rt.sleepers is not None:
            await rt.sleepers.stop()
        if rt.kube is not None:
            await rt.kube.close()
        rt.sqs.close()
        await rt.sqs.probe.close()
        if rt.eks is not None:
            rt.eks.close()

    @kopf.on.create(*RESOURCE, registry=registry, id="reconcile-create")
    async def _create(body: kopf.Body, retry: int, **_: Any) -> None:
        # Fresh (create children without reading first) only for a never-reconciled object.
        fresh = retry == 0 and not (body.get("status") or {}).get("observedGeneration")
        await run_reconcile(rt, body, "create", fresh=fresh, retry=retry)

    @kopf.on.update(*RESOURCE, registry=registry, id="reconcile-update")
    async def _update(body: kopf.Body, old: Any, new: Any, retry: int, **_: Any) -> None:
        if retry == 0 and lifecycle_only(old, new):  # a wake request or activity stamp
            await run_reconcile(rt, body, "wake", fresh=False, retry=retry, mode="lifecycle")
            return
        await run_reconcile(rt, body, "update", fresh=False, retry=retry)

    @kopf.on.resume(*RESOURCE, registry=registry, id="reconcile-resume")
    async def _resume(body: kopf.Body, retry: int, **_: Any) -> None:
        await run_reconcile(rt, body, "resume", fresh=False, retry=retry)
        await migrate_bookkeeping(rt, body)

    @kopf.timer(*RESOURCE, registry=registry, id="drift",
                interval=settings.drift_interval_seconds,
                initial_delay=settings.drift_initial_delay())
    async def _drift(body: kopf.Body, **_: Any) -> None:
        if body.metadata.get("deletionTimestamp"):
            return
        current: Mapping[str, Any] | None = body
        if not steady(rt, body):  # kopf's copy may predate our last status write: read it
            current = await rt.client().get(builders.EDIT_ENVIRONMENT, body.metadata.namespace
                                            or "", body.metadata.name or "")
        if current is None or current["metadata"].get("deletionTimestamp"):
            return
        if (current.get("status") or {}).get("observedGeneration") is None:
            return  # never reconciled yet: the create handler's first (a burst's backlog)
        await run_reconcile(rt, current, "timer", fresh=False, retry=0)

    def _stamped(body: kopf.Body, type: Any, **_: Any) -> bool:
        return lifecycle_seen(rt, body, type)

    @kopf.on.event(*RESOURCE, registry=registry, id="lifecycle", when=_stamped)
    async def _lifecycle(body: kopf.Body, **_: Any) -> None:
        await lifecycle_event(rt, body)

    @kopf.on.delete(*RESOURCE, registry=registry, id="cleanup")
    async def _delete(body: kopf.Body, retry: int, logger: Any, **_: Any) -> None:
        await cleanup(rt, body, retry, logger)

    @kopf.on.event(*RESOURCE, registry=registry, id="release",
                   annotations={ANNOTATION_RELEASE_FINALIZER: "true"})
    async def _release(body: kopf.Body, **_: Any) -> None:
        await release(rt, body)

    return rt
