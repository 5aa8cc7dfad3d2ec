"""The child watches' pure parts: selectors, namespace scope (kopf's), and a feed's lists and
events as what the operator's handlers get."""

from __future__ import annotations

from typing import Any

import pytest

from webordinary.operator import builders
from webordinary.operator.childwatch import (
    EDITOR_PODS,
    MANAGED,
    WATCHED,
    Feed,
    Watched,
    in_scope,
    scopes,
)

DEPLOYMENTS = Watched(builders.DEPLOYMENT, MANAGED)


def obj(name: str, rv: int, ns: str = "tenants", **meta: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns, "resourceVersion": str(rv), **meta},
            "spec": {"replicas": 1}, "status": {"replicas": 1}}


def test_every_child_kind_is_watched_with_its_labels_on_the_server() -> None:
    kinds = {w.kind: w.selector() for w in WATCHED}
    managed = f"app.kubernetes.io/managed-by={builders.MANAGED_BY}"
    assert kinds == {"Deployment": managed, "PersistentVolumeClaim": managed,
                     "ServiceAccount": managed, "Service": managed, "NetworkPolicy": managed,
                     "Pod": f"app.kubernetes.io/name={builders.APP_NAME}"}
    assert EDITOR_PODS == {"app.kubernetes.io/name": builders.APP_NAME}


def test_a_feed_asks_for_its_namespace_and_labels() -> None:
    feed = Feed(DEPLOYMENTS, "tenants")
    assert feed.path() == "/apis/apps/v1/namespaces/tenants/deployments"
    assert feed.params() == {"labelSelector": DEPLOYMENTS.selector()}
    assert Feed(Watched(builders.PVC, MANAGED), None).path() == "/api/v1/persistentvolumeclaims"


@pytest.mark.parametrize(("patterns", "expected"), [
    ([], [None]),  # cluster-wide (kopf -A)
    (["tenants"], ["tenants"]),
    (["a", "b", "a"], ["a", "b"]),
    (["tenant-*"], [None]),  # a glob: every namespace, matched here as kopf matches
    (["a", "!b"], [None]),
])
def test_scopes_follow_the_namespace_settings(patterns: list[str],
                                              expected: list[str | None]) -> None:
    assert scopes(patterns) == expected


@pytest.mark.parametrize(("namespace", "pattern", "matches"), [
    ("myapp-test", "myapp-*, !*-pr-*, *pr-123", True),
    ("myapp-pr-123", "myapp-*, !*-pr-*, *pr-123", True),
    ("myapp-pr-456", "myapp-*, !*-pr-*, *pr-123", False),
    ("otherapp-pr-123", "myapp-*, !*-pr-*, *pr-123", False),
    ("otherapp-pr-123", "!*-pr-*, *pr-123", True),
    ("anyapp-anything", "!*-pr-*, *pr-123", True),
    ("myapp-pr-456", "!*-pr-*, *pr-123", False),
    ("tenants", "tenants", True),
    ("tenants-2", "tenants", False),
])
def test_namespace_patterns_match_as_kopfs_do(namespace: str, pattern: str,
                                             matches: bool) -> None:
    # kopf's documented examples (kopf._cogs.structs.references.match_namespace)
    assert in_scope(namespace, [pattern]) is matches


def test_a_list_is_first_sights_and_a_relist_notices_deletions() -> None:
    feed = Feed(DEPLOYMENTS, "tenants")
    owners = [{"kind": "EditEnvironment", "name": "a", "controller": True}]
    first = list(feed.relisted([obj("a", 5, ownerReferences=owners, labels={"x": "1"}),
                                obj("b", 6)]))
    assert [(event, body["metadata"]["name"]) for event, body in first] == [
        (None, "a"), (None, "b")]
    # a 410 later: `a` was deleted while the watch was cut off
    again = list(feed.relisted([obj("b", 9)]))
    assert [(event, body["metadata"]["name"]) for event, body in again] == [
        (None, "b"), ("DELETED", "a")]
    deleted = again[1][1]["metadata"]
    assert deleted["ownerReferences"] == owners
    assert deleted["labels"] == {"x": "1"}
    assert deleted["namespace"] == "tenants"
    assert "spec" not in again[1][1]
    assert list(feed.relisted([obj("b", 9)])) == [(None, obj("b", 9))]


def test_watch_events_move_the_version_and_keep_the_known_objects() -> None:
    feed = Feed(DEPLOYMENTS, "tenants")
    list(feed.relisted([obj("a", 5)]))
    feed.version = "5"
    assert feed.event({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "12"}}}
                      ) is None
    assert feed.version == "12"
    assert feed.event({"type": "ADDED", "object": obj("b", 13)}) == ("ADDED", obj("b", 13))
    assert feed.event({"type": "MODIFIED", "object": obj("a", 14)}) == (
        "MODIFIED", obj("a", 14))
    assert feed.event({"type": "DELETED", "object": obj("a", 15)}) == ("DELETED", obj("a", 15))
    assert set(feed.known) == {("tenants", "b")}
    assert feed.version == "15"
    # `b` is still there after a re-list: no deletion
    assert [e for e, _ in feed.relisted([obj("b", 16)])] == [None]


def test_a_cluster_wide_feed_for_patterns_keeps_only_matching_namespaces() -> None:
    feed = Feed(DEPLOYMENTS, None, ["tenant-*"])
    listed = list(feed.relisted([obj("a", 1, ns="tenant-1"), obj("b", 2, ns="other")]))
    assert [body["metadata"]["name"] for _, body in listed] == ["a"]
    assert feed.event({"type": "ADDED", "object": obj("c", 3, ns="other")}) is None
    assert feed.version == "3"
    assert feed.event({"type": "ADDED", "object": obj("d", 4, ns="tenant-2")}) is not None
