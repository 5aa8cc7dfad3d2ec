"""Drift is judged in the form the API server stores: empty optional fields dropped, quantities
canonical. Children as stored by the emulator's rules (defaults, omitempty, canonical
quantities, in-process) are in sync with what the builders want."""

from __future__ import annotations

from typing import Any

import pytest

from webordinary.contracts.environment import EditEnvironmentSpec, QueueUrls
from webordinary.devkit.kube.store import Store
from webordinary.operator import builders, drift
from webordinary.operator.settings import OperatorSettings

OWNER = builders.Owner(namespace="tenants", name="acme-site-ann", uid="uid-1")
QUEUES = QueueUrls(input="http://sqs/1/in", output="http://sqs/1/out", dlq="http://sqs/1/dlq")


def every_optional_field(user: str = "ann") -> dict[str, Any]:
    """A spec with every optional field set, in forms a server would store differently."""
    return {
        "clientId": "acme", "projectId": "site", "userId": user,
        "repository": {"url": "https://git.example.com/acme/site.git", "branch": "live",
                       "credentialsSecretRef": {"name": "acme-git", "key": "token"},
                       "pushAfterEdit": False},
        "sessions": ["aaaa1111bbbb2222", "cccc3333dddd4444"],
        "idleTimeout": "45m",
        "suspend": False,
        "storage": {"storageClassName": "standard", "size": "5120Mi",
                    "deletionPolicy": "Delete"},
        "editor": {
            "image": "ghcr.io/webordinary/editor:latest",
            "resources": {"requests": {"cpu": "0.5", "memory": "1024Mi"},
                          "limits": {"cpu": "2000m", "memory": "2048Mi"}},
            "env": [{"name": "EMPTY", "value": ""}, {"name": "SITE_MODE", "value": "draft"}],
        },
        "queues": {"visibilityTimeout": 600, "messageRetention": 86400, "maxReceiveCount": 5,
                   "deletionPolicy": "Retain"},
        "budget": {"monthlyUsd": 25.5},
    }


def stored(manifest: dict[str, Any]) -> dict[str, Any]:
    """The object as the emulator's rules store it (the rules of a real server)."""
    store = Store()
    namespaces = store.find("", "v1", "namespaces")
    assert namespaces is not None
    store.create(namespaces, None, {"apiVersion": "v1", "kind": "Namespace",
                                    "metadata": {"name": OWNER.namespace}})
    group, _, version = manifest["apiVersion"].rpartition("/")
    resource = store.by_kind(manifest["apiVersion"], manifest["kind"])
    assert resource is not None, (group, version)
    obj, _ = store.create(resource, OWNER.namespace, manifest)
    return obj


@pytest.mark.parametrize("settings", [
    OperatorSettings(),
    OperatorSettings(anthropic_secret_name="anthropic", gateway_namespace="webordinary",
                     editor_role_arn_template="arn:aws:iam::1:role/{namespace}-{name}"),
], ids=["defaults", "gateway-namespace"])
def test_stored_children_are_in_sync_with_what_is_wanted(settings: OperatorSettings) -> None:
    spec = EditEnvironmentSpec.model_validate(every_optional_field())
    old_rule_loops = []
    for kind, name, manifest in builders.children(OWNER, spec, QUEUES, 1, settings):
        if manifest is None:
            continue
        live = stored(manifest)
        view = builders.owned_view(kind, manifest)
        assert drift.in_sync(view, live), (kind.kind, name)
        if not builders.is_subset(view, live):
            old_rule_loops.append(kind.kind)
    # the plain subset rule would patch these on every drift tick (the bug this fixes)
    assert "Deployment" in old_rule_loops


def test_empty_desired_matches_absent_or_empty_live() -> None:
    assert drift.in_sync({"env": [{"name": "A", "value": ""}]}, {"env": [{"name": "A"}]})
    assert drift.in_sync({"metadata": {"annotations": {}}}, {"metadata": {}})
    assert drift.in_sync({"spec": {"ingress": [], "args": None}}, {"spec": {"ingress": []}})
    assert not drift.in_sync({"env": [{"name": "A", "value": "x"}]}, {"env": [{"name": "A"}]})


def test_real_drift_is_still_seen() -> None:
    rule = {"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}
    assert not drift.in_sync({"spec": {"ingress": []}}, {"spec": {"ingress": [rule]}})
    assert not drift.in_sync({"a": {"b": 1}}, {"a": {}})
    assert not drift.in_sync({"replicas": 0}, {"replicas": 1})
    assert not drift.in_sync({"privileged": False}, {})
    assert not drift.in_sync({"x": 1}, {"x": True})
    assert not drift.in_sync({"labels": {"a": "1"}}, {"labels": {"a": "2"}})
    assert not drift.in_sync([1, 2], [1])


@pytest.mark.parametrize(("desired", "live", "same"), [
    ("0.5", "500m", True), ("1024Mi", "1Gi", True), ("1000m", "1", True), (1, "1", True),
    ("5120Mi", "5Gi", True), ("2", "2000m", True), ("1Gi", "1G", False), ("1", "2", False),
    ("500m", "0.4", False),
])
def test_quantities_compare_by_value(desired: Any, live: Any, same: bool) -> None:
    wanted = {"resources": {"requests": {"cpu": desired}}}
    assert drift.in_sync(wanted, {"resources": {"requests": {"cpu": live}}}) is same
    # elsewhere a string is a string
    assert drift.in_sync({"value": desired}, {"value": live}) is (desired == live)
