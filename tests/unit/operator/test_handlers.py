"""kopf glue that is pure: which updates are lifecycle-only, what of a child matters, and the
move of kopf's bookkeeping out of the webordinary.dev/ annotations."""

from __future__ import annotations

from typing import Any

import kopf

from webordinary.contracts.environment import ANNOTATION_ACTIVITY, ANNOTATION_WAKE
from webordinary.operator.handlers import (
    DIFFBASE_KEY,
    KOPF_PREFIX,
    LIFECYCLE_FIELDS,
    DiffBaseStorage,
    ProgressStorage,
    fingerprint,
    lifecycle_only,
)


def essence(**annotations: str) -> dict[str, Any]:
    return {"spec": {"clientId": "c"}, "metadata": {"annotations": annotations}}


def test_only_wake_and_activity_annotations_are_lifecycle_only() -> None:
    assert lifecycle_only(essence(), essence(**{ANNOTATION_WAKE: "t"}))
    assert lifecycle_only(essence(**{ANNOTATION_WAKE: "a"}),
                          essence(**{ANNOTATION_WAKE: "b", ANNOTATION_ACTIVITY: "c"}))
    assert not lifecycle_only(essence(), essence(other="x"))
    changed = essence(**{ANNOTATION_WAKE: "t"})
    changed["spec"] = {"clientId": "d"}
    assert not lifecycle_only(essence(), changed)
    assert not lifecycle_only(None, essence())


def test_child_fingerprints_ignore_what_the_operator_writes() -> None:
    deployment = {"spec": {"replicas": 1}, "status": {"availableReplicas": 0}}
    scaled = {"spec": {"replicas": 0}, "status": {"availableReplicas": 0}}
    assert fingerprint("Deployment", deployment) == fingerprint("Deployment", scaled)
    ready = {"spec": {"replicas": 1}, "status": {"availableReplicas": 1}}
    assert fingerprint("Deployment", deployment) != fingerprint("Deployment", ready)
    crashing = {"status": {"phase": "Running", "containerStatuses": [
        {"name": "editor", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}}
    assert fingerprint("Pod", crashing) != fingerprint("Pod", {"status": {"phase": "Running"}})


def body(annotations: dict[str, str]) -> kopf.Body:
    return kopf.Body({"apiVersion": "webordinary.dev/v1alpha1", "kind": "EditEnvironment",
                      "metadata": {"name": "x", "namespace": "ns", "annotations": annotations},
                      "spec": {"clientId": "c"}})


def test_old_bookkeeping_is_read_once_and_removed_and_hides_nothing() -> None:
    storage = DiffBaseStorage()
    old = storage.build(body=body({}))
    legacy = body({
        "webordinary.dev/kopf-managed": "yes",
        "webordinary.dev/last-handled-configuration": '{"spec": {"clientId": "c"}}',
        "webordinary.dev/release-finalizer": "true",
    })
    # kopf's marker of the old prefix would hide every webordinary.dev/ annotation.
    built = storage.build(body=legacy)
    assert built["metadata"]["annotations"] == {"webordinary.dev/release-finalizer": "true"}
    assert storage.fetch(body=legacy) == {"spec": {"clientId": "c"}}
    assert built != old, "our annotations are changes kopf must see"
    patch = kopf.Patch()
    storage.store(body=legacy, patch=patch, essence=built)
    annotations = patch["metadata"]["annotations"]
    assert annotations["webordinary.dev/kopf-managed"] is None
    assert annotations["webordinary.dev/last-handled-configuration"] is None
    assert "kopf.webordinary.dev/last-handled-configuration" in annotations


def test_wake_and_activity_stamps_are_not_spec_changes() -> None:
    """They are left out of kopf's essence (no update handler, no bookkeeping write per stamp);
    the lifecycle event handler reacts to them."""
    storage = DiffBaseStorage()
    plain = storage.build(body=body({}))
    stamped = storage.build(body=body({ANNOTATION_WAKE: "2026-11-28T15:00:00Z",
                                       ANNOTATION_ACTIVITY: "2026-11-28T15:00:01Z"}))
    assert stamped == plain
    other = storage.build(body=body({ANNOTATION_WAKE: "t", "example.com/x": "y"}))
    assert other["metadata"]["annotations"] == {"example.com/x": "y"}


def test_the_lean_essence_is_the_one_kopf_builds() -> None:
    """Our essence skips kopf's deep copy of the whole body; it must stay equal to kopf's own,
    or every environment would look changed to kopf (an update handler run each) after an
    upgrade."""
    kopfs = kopf.AnnotationsDiffBaseStorage(prefix=KOPF_PREFIX, key=DIFFBASE_KEY,
                                            ignored_fields=LIFECYCLE_FIELDS)
    ours = DiffBaseStorage()
    full = {
        "apiVersion": "webordinary.dev/v1alpha1", "kind": "EditEnvironment",
        "metadata": {
            "name": "x", "namespace": "ns", "uid": "u", "generation": 3, "resourceVersion": "9",
            "finalizers": ["webordinary.dev/cleanup"], "labels": {"team": "a"},
            "annotations": {
                f"{KOPF_PREFIX}/{DIFFBASE_KEY}": '{"spec": {}}',
                f"{KOPF_PREFIX}/reconcile-update": '{"retries": 1}',
                "kopf.example.org/kopf-managed": "yes", "kopf.example.org/x": "y",
                "kubectl.kubernetes.io/last-applied-configuration": "{}",
                ANNOTATION_WAKE: "t", ANNOTATION_ACTIVITY: "u", "example.com/keep": "z"}},
        "spec": {"clientId": "c", "sessions": [{"threadId": "t1", "paths": ["/a"]}],
                 "repository": {"url": "https://example.com/r.git"}},
        "status": {"phase": "Ready", "conditions": [{"type": "Ready", "status": "True"}]},
    }
    bodies = [
        full,
        {**full, "metadata": {"name": "x", "annotations": {ANNOTATION_WAKE: "t"}}},
        {**full, "metadata": {"name": "x", "labels": {}}, "spec": {}},
        {"metadata": {"name": "x"}, "spec": {"clientId": "c"}, "data": {"k": [1, {"a": None}]}},
    ]
    for raw in bodies:
        built = ours.build(body=kopf.Body(raw))
        assert built == kopfs.build(body=kopf.Body(raw)), raw
    built = ours.build(body=kopf.Body(full))
    built["spec"]["sessions"][0]["paths"].append("/b")
    assert full["spec"]["sessions"][0]["paths"] == ["/a"], "a copy, not a view"
    progress = ProgressStorage()
    kopfs_progress = kopf.AnnotationsProgressStorage(prefix=KOPF_PREFIX)
    for raw in bodies:
        essence = kopf.AnnotationsDiffBaseStorage(prefix="other.example").build(
            body=kopf.Body(raw))
        assert progress.clear(essence=essence) == kopfs_progress.clear(essence=essence)


def test_the_operators_events_are_the_ones_kopf_posts() -> None:
    """Posted over the operator's own client now; same fields as kopf's poster (`kubectl
    describe` shows them From kopf, and field selectors on source keep working)."""
    from datetime import UTC, datetime

    from webordinary.operator.events import event_body

    obj = {"apiVersion": "webordinary.dev/v1alpha1", "kind": "EditEnvironment",
           "metadata": {"name": "x", "namespace": "ns", "uid": "u-1"}}
    body = event_body(obj, "Normal", "Woke", "m" * 2000, datetime(2026, 11, 29, tzinfo=UTC))
    assert body["involvedObject"] == {"apiVersion": "webordinary.dev/v1alpha1",
                                      "kind": "EditEnvironment", "name": "x", "uid": "u-1",
                                      "namespace": "ns"}
    assert body["metadata"] == {"namespace": "ns", "generateName": "kopf-event-"}
    assert body["source"] == {"component": "kopf"}
    assert (body["type"], body["reason"], len(body["message"])) == ("Normal", "Woke", 1000)
    assert body["firstTimestamp"] == body["lastTimestamp"] == "2026-11-29T00:00:00+00:00"
