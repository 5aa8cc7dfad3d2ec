"""What spares the operator work per environment in a creation burst: refreshes that one
pending refresh covers, the lifecycle filter's answers, the spec and status parsed once."""

from __future__ import annotations

from typing import Any

from webordinary.contracts.environment import ANNOTATION_ACTIVITY, ANNOTATION_WAKE
from webordinary.operator.adapters.sqs import SqsAdapter
from webordinary.operator.handlers import coalesced, lifecycle_seen
from webordinary.operator.metrics import Metrics
from webordinary.operator.reconcile import STATUS_CACHE, Runtime, spec_of, status_of
from webordinary.operator.settings import OperatorSettings

KEY = ("ns", "c-p-u")
SPEC: dict[str, Any] = {"clientId": "c", "projectId": "p", "userId": "u",
                        "repository": {"url": "https://x/y.git"}}


def runtime() -> Runtime:
    settings = OperatorSettings()
    return Runtime(settings=settings, sqs=SqsAdapter(settings), metrics=Metrics())


def environment(version: int, generation: int = 1, **annotations: str) -> dict[str, Any]:
    return {"metadata": {"name": KEY[1], "namespace": KEY[0], "uid": "uid",
                         "resourceVersion": str(version), "generation": generation,
                         "annotations": annotations},
            "spec": SPEC, "status": {"phase": "Starting", "replicas": 1}}


def test_a_child_change_before_the_refresh_takes_the_lock_needs_no_second_run() -> None:
    rt = runtime()
    assert not coalesced(rt, KEY), "no refresh running: the caller starts one"
    rt.refreshing.add(KEY)
    rt.refresh_pending.add(KEY)
    assert coalesced(rt, KEY)
    assert KEY not in rt.refresh_again, "the pending refresh observes the change"
    assert coalesced(rt, KEY, "full")
    assert KEY in rt.refresh_again, "a deleted child: a full run after it"
    assert KEY in rt.refresh_full
    rt.refresh_again.clear()
    rt.refresh_full.clear()
    rt.refresh_pending.discard(KEY)  # it has taken the lock: what it observed may be older
    assert coalesced(rt, KEY)
    assert KEY in rt.refresh_again
    assert KEY not in rt.refresh_full
    rt.sqs.close()


def test_the_lifecycle_filter_asks_only_for_changed_stamps_and_notes_every_event() -> None:
    rt = runtime()
    assert not lifecycle_seen(rt, environment(1), "ADDED"), "first sight: create/resume"
    assert rt.latest.get(KEY) is not None
    assert not lifecycle_seen(rt, environment(2), "MODIFIED"), "no stamp changed"
    woken = environment(3, **{ANNOTATION_WAKE: "2026-01-01T00:00:00Z"})
    assert lifecycle_seen(rt, woken, "MODIFIED")
    assert lifecycle_seen(rt, woken, "MODIFIED"), "the same version asked again: same answer"
    assert rt.latest.get(KEY)["metadata"]["resourceVersion"] == "3"  # type: ignore[index]
    stamped = environment(4, **{ANNOTATION_WAKE: "2026-01-01T00:00:00Z",
                                ANNOTATION_ACTIVITY: "2026-01-01T00:01:00Z"})
    assert lifecycle_seen(rt, stamped, "MODIFIED")
    respecced = environment(5, generation=2, **{ANNOTATION_WAKE: "2026-01-02T00:00:00Z"})
    assert not lifecycle_seen(rt, respecced, "MODIFIED"), "with a spec change: the update"
    assert not lifecycle_seen(rt, respecced, "DELETED")
    assert "uid" not in rt.marks
    assert "uid" not in rt.stamped
    assert rt.latest.get(KEY) is None
    rt.sqs.close()


def test_a_status_is_parsed_once_per_version_and_a_spec_once_per_generation() -> None:
    rt = runtime()
    first = status_of(rt, environment(1))
    assert status_of(rt, environment(1)) is first
    assert status_of(rt, environment(2)) is not first
    assert first.replicas == 1
    for version in range(3, STATUS_CACHE + 10):
        status_of(rt, environment(version))
    assert len(rt.statuses) == STATUS_CACHE
    assert status_of(rt, environment(1)) is not first, "the oldest are dropped"
    spec, invalid = spec_of(rt, "uid", 1, SPEC)
    assert spec is not None
    assert invalid is None
    assert spec_of(rt, "uid", 1, {**SPEC, "idleTimeout": "0s"})[0] is spec, "same generation"
    changed, problem = spec_of(rt, "uid", 2, {**SPEC, "idleTimeout": "0s"})
    assert changed is None
    assert (problem or "").startswith("spec.idleTimeout")
    rt.sqs.close()
