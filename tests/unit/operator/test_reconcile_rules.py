"""Pure parts of the reconcile: spec parsing names the field, ownership of live children."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf
import pytest

from webordinary.contracts.environment import (
    FINALIZER,
    GROUP,
    EditEnvironmentStatus,
    Phase,
)
from webordinary.operator import builders
from webordinary.operator.adapters.sqs import SqsAdapter
from webordinary.operator.handlers import configure, login
from webordinary.operator.metrics import Metrics
from webordinary.operator.observed import child_version, slim
from webordinary.operator.reconcile import (
    Runtime,
    input_watched,
    is_foreign,
    parse_spec,
    previous_status,
    steady,
)
from webordinary.operator.settings import OperatorSettings
from webordinary.operator.wakeups import Deadlines, Key, SleepingQueues

SPEC: dict[str, Any] = {"clientId": "c", "projectId": "p", "userId": "u",
                        "repository": {"url": "https://x/y.git"}}
OWNER = builders.Owner("ns", "c-p-u", "uid")


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"idleTimeout": "0s"}, "spec.idleTimeout: Value error, idleTimeout must be longer"),
        ({"sessions": ["a", "a"]}, "spec.sessions: Value error, sessions must not repeat"),
        ({"repository": {}}, "spec.repository.url: Field required"),
        ({"editor": {"env": [{"name": "OK"}, {"name": "WEBORDINARY_X"}]}},
         "spec.editor.env[1].name: 'WEBORDINARY_X' is reserved"),
        ({"surprise": 1}, "spec.surprise: Extra inputs are not permitted"),
    ],
)
def test_parse_spec_names_the_field(patch: dict[str, Any], message: str) -> None:
    spec, invalid = parse_spec({**SPEC, **patch})
    assert spec is None
    assert invalid is not None
    assert invalid.startswith(message), invalid


def test_parse_spec_accepts_a_good_one() -> None:
    spec, invalid = parse_spec(SPEC)
    assert invalid is None
    assert spec is not None
    assert spec.idle_timeout == "20m"


def test_unreadable_previous_status_counts_as_none() -> None:
    assert previous_status({"phase": "Dancing"}).phase == Phase.PENDING
    assert previous_status(None).phase == Phase.PENDING
    assert previous_status({"phase": "Ready"}).phase == Phase.READY


def test_is_foreign() -> None:
    ours = {"metadata": {"ownerReferences": [{"kind": "EditEnvironment", "name": "c-p-u",
                                              "uid": "older", "controller": True}]}}
    assert is_foreign(ours, OWNER) is None, "a child of an earlier incarnation is adopted"
    assert is_foreign({"metadata": {}}, OWNER) is None
    theirs = {"metadata": {"ownerReferences": [{"kind": "Deployment", "name": "x",
                                                "controller": True}]}}
    assert is_foreign(theirs, OWNER) == "controlled by Deployment/x"


def test_kopf_configuration() -> None:
    settings = kopf.OperatorSettings()
    configure(settings, OperatorSettings())
    assert settings.persistence.finalizer == FINALIZER
    assert isinstance(settings.persistence.progress_storage, kopf.AnnotationsProgressStorage)
    assert isinstance(settings.persistence.diffbase_storage, kopf.AnnotationsDiffBaseStorage)
    assert settings.persistence.progress_storage.prefix == f"kopf.{GROUP}"
    assert settings.persistence.diffbase_storage.prefix == f"kopf.{GROUP}"
    assert settings.persistence.consistency_timeout >= 30
    # kopf's per-handler success messages are not Events (each would be a write per change)
    assert settings.posting.level == logging.WARNING


def test_login_to_a_local_emulator() -> None:
    info = login(OperatorSettings(kube_api_url="http://127.0.0.1:1234"))
    assert (info.server, info.insecure, info.token) == ("http://127.0.0.1:1234", True, "dummy")


def test_metrics_track_phases() -> None:
    metrics = Metrics()
    metrics.set_phase("a", Phase.READY)
    metrics.set_phase("b", Phase.READY)
    metrics.set_phase("a", Phase.SLEEPING)
    metrics.set_phase("b", None)
    metrics.duration.labels(trigger="create").observe(0.2)
    metrics.errors.labels(reason="AWSThrottled").inc()

    def value(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, labels)

    assert value("webordinary_operator_environments", phase="Ready") == 0
    assert value("webordinary_operator_environments", phase="Sleeping") == 1
    assert value("webordinary_operator_reconcile_errors_total", reason="AWSThrottled") == 1
    assert value("webordinary_operator_reconcile_duration_seconds_count", trigger="create") == 1


async def test_drift_ticks_leave_the_input_queue_to_its_watchers() -> None:
    settings = OperatorSettings()
    rt = Runtime(settings=settings, sqs=SqsAdapter(settings), metrics=Metrics())
    awake = EditEnvironmentStatus(replicas=1)
    asleep = EditEnvironmentStatus(replicas=0)
    assert not input_watched(rt, OWNER, awake), "no timers (e.g. tests): the tick reads it"

    async def fire(key: Key, at: datetime) -> None:
        return None

    rt.deadlines = Deadlines(fire)
    rt.sleepers = SleepingQueues(60.0, lambda url: _busy(), lambda key, busy: _none())
    assert not input_watched(rt, OWNER, awake)
    rt.deadlines.arm((OWNER.namespace, OWNER.name), datetime.now(UTC) + timedelta(hours=1))
    assert input_watched(rt, OWNER, awake), "the sleep deadline reads it before any sleep"
    assert not input_watched(rt, OWNER, asleep)
    rt.sleepers.add((OWNER.namespace, OWNER.name), "https://sqs/q")
    assert input_watched(rt, OWNER, asleep), "the wake poller reads it"
    rt.deadlines.close()
    rt.sqs.close()


async def _busy() -> bool:
    return False


async def _none() -> None:
    return None


def test_a_drift_tick_is_free_while_the_watches_show_no_change() -> None:
    settings = OperatorSettings()
    rt = Runtime(settings=settings, sqs=SqsAdapter(settings), metrics=Metrics())
    names = [f"webordinary-{role}-c-p-u" for role in ("input", "output", "dlq")]
    body: dict[str, Any] = {
        "metadata": {"uid": "uid", "generation": 2},
        "status": {"phase": "Ready", "observedGeneration": 2,
                   "queues": {role: f"http://sqs/1/{name}" for role, name
                              in zip(("input", "output", "dlq"), names, strict=True)}}}
    child = ("Service", "ns", "c-p-u-editor")
    assert not steady(rt, body), "nothing verified yet: the tick checks"
    rt.verified["uid"] = {child: "5"}
    rt.child_versions[child] = "5"
    rt.sqs._listing = (time.monotonic(), frozenset(names))  # a fresh shared ListQueues
    assert steady(rt, body)
    rt.child_versions[child] = "6"
    assert not steady(rt, body), "someone changed the child"
    del rt.child_versions[child]
    assert not steady(rt, body), "someone deleted the child"
    rt.child_versions[child] = "5"
    assert not steady(rt, {**body, "metadata": {"uid": "uid", "generation": 3}}), "new spec"
    assert not steady(rt, {**body, "status": {**body["status"], "phase": "Starting"}})
    rt.sqs._listing = (time.monotonic(), frozenset(names[1:]))
    assert not steady(rt, body), "a queue is gone"
    rt.sqs._listing = (time.monotonic() - settings.drift_interval_seconds * 0.6,
                       frozenset(names))
    assert not steady(rt, body), "a stale listing: the first tick checks (and refreshes it)"
    assert steady(rt, body), "the others go on while that refresh runs"
    rt.sqs._listing = (time.monotonic() - settings.drift_interval_seconds, frozenset(names))
    assert not steady(rt, body), "a listing a drift interval old: every tick checks"
    rt.sqs.close()


def test_a_deployments_status_is_no_drift_but_its_spec_and_metadata_are() -> None:
    """The controller rewrites a Deployment's status at every wake and sleep: that must not
    make the next drift tick re-read every child (see reconcile.steady)."""
    deployment: dict[str, Any] = {"metadata": {
        "name": "d", "generation": 4, "resourceVersion": "10", "labels": {"a": "b"},
        "annotations": {"x": "y"}, "ownerReferences": [{"kind": "EditEnvironment"}]},
        "spec": {"replicas": 1}, "status": {"replicas": 1}}
    version = child_version("Deployment", deployment)
    restated = {**deployment, "metadata": {**deployment["metadata"], "resourceVersion": "11"},
                "status": {"replicas": 1, "availableReplicas": 1}}
    assert child_version("Deployment", restated) == version
    assert child_version("Deployment", slim(restated)) == version, "the watch's slim copy"
    for change in ({"generation": 5}, {"labels": {"a": "c"}}, {"annotations": {}},
                   {"ownerReferences": []}):
        changed = {**deployment, "metadata": {**deployment["metadata"], **change}}
        assert child_version("Deployment", changed) != version, change
    service = {"metadata": {"generation": 1, "resourceVersion": "10"}}
    assert child_version("Service", service) == "10"
    assert child_version("Service", {"metadata": {"generation": 1, "resourceVersion": "11"}}) \
        != "10", "kinds without a spec generation: every change counts"


def test_a_workspace_binding_is_no_drift_but_its_metadata_is() -> None:
    """The volume controller binds a new PVC (status, bind annotations, on a real cluster also
    spec.volumeName): the operator owns only the claim's metadata (builders.owned_view)."""
    claim: dict[str, Any] = {"metadata": {
        "name": "w", "uid": "u1", "generation": 1, "resourceVersion": "10",
        "labels": {"a": "b"}, "annotations": {"x": "y"}},
        "spec": {"accessModes": ["ReadWriteMany"]}, "status": {"phase": "Pending"}}
    version = child_version("PersistentVolumeClaim", claim)
    bound = {"metadata": {**claim["metadata"], "resourceVersion": "12", "annotations": {
        "x": "y", "pv.kubernetes.io/bind-completed": "yes",
        "volume.beta.kubernetes.io/storage-provisioner": "efs.csi.aws.com"}},
        "spec": {**claim["spec"], "volumeName": "pvc-1"}, "status": {"phase": "Bound"}}
    assert child_version("PersistentVolumeClaim", bound) == version
    assert child_version("PersistentVolumeClaim", slim(bound)) == version, "the watch's copy"
    for change in ({"labels": {"a": "c"}}, {"annotations": {}},
                   {"annotations": {"x": "y", "example.com/kubernetes.io": "z"}},
                   {"ownerReferences": [{"kind": "EditEnvironment"}]}, {"uid": "u2"}):
        changed = {**claim, "metadata": {**claim["metadata"], **change}}
        assert child_version("PersistentVolumeClaim", changed) != version, change
    deployment = {"metadata": {"uid": "u1", "generation": 2, "labels": {"a": "b"}}}
    revised = {"metadata": {**deployment["metadata"],
                            "annotations": {"deployment.kubernetes.io/revision": "1"}}}
    assert child_version("Deployment", revised) == child_version("Deployment", deployment)
    assert child_version("Deployment", {"metadata": {**deployment["metadata"], "uid": "u2"}}) \
        != child_version("Deployment", deployment), "deleted and made again by someone else"
