"""Each environment's EKS Pod Identity association, made by the operator over real HTTP (the
devkit's EKS stand-in): created once, left alone at drift ticks, corrected, reported, deleted."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from tests.integration.operator.conftest import (
    NAMESPACE,
    Harness,
    condition,
    is_reconciled,
    spec_for,
    wait_for,
)
from webordinary.devkit.eks import PodIdentityApi

CLUSTER = "prod"
ROLE = "arn:aws:iam::123456789012:role/webordinary-editor"
OTHER_ROLE = "arn:aws:iam::123456789012:role/hand-made"


@pytest.fixture
def eks() -> Iterator[PodIdentityApi]:
    with PodIdentityApi(clusters=[CLUSTER], roles=[ROLE, OTHER_ROLE]) as api:
        yield api


def pod_identity(eks: PodIdentityApi, **extra: Any) -> dict[str, Any]:
    return {"editor_aws_identity": "pod-identity", "eks_cluster_name": CLUSTER,
            "editor_role_arn": ROLE, "eks_endpoint_url": eks.endpoint_url, **extra}


# No watch covers EKS: drift ticks re-read the associations and heal them. These tests are
# about those ticks, so they run at 1 s (production: 300 s, a check each 30 min).
TICKS: dict[str, Any] = {"drift_interval_seconds": 1.0, "drift_initial_delay_seconds": 1.0}


def client(eks: PodIdentityApi) -> Any:
    return boto3.client("eks", endpoint_url=eks.endpoint_url, region_name="us-east-1")


def identity(harness: Harness, name: str) -> dict[str, Any] | None:
    return condition(harness.api.ee(name), "IdentityReady")


def deployment(harness: Harness, name: str) -> Any:
    return harness.api.child("/apis/apps/v1", "deployments", f"{name}-editor")


def test_one_association_per_environment_no_writes_at_drift_and_gone_on_delete(
    harness: Harness, eks: PodIdentityApi
) -> None:
    api, name = harness.api, "ameliastamps-website-john"
    with harness.run_operator(**pod_identity(eks, **TICKS)) as runner:
        created = api.create_ee(name, spec_for("john"))
        wait_for(lambda: is_reconciled(api.ee(name)), what="reconciled")
        (association,) = eks.associations()
        assert association["namespace"] == NAMESPACE
        assert association["serviceAccount"] == f"{name}-editor"
        assert association["roleArn"] == ROLE
        assert association["disableSessionTags"] is False
        assert association["tags"] == {
            "webordinary.dev/namespace": NAMESPACE, "webordinary.dev/name": name,
            "webordinary.dev/uid": created["metadata"]["uid"],
            "webordinary.dev/service-account": f"{name}-editor"}
        cond = identity(harness, name)
        assert cond is not None
        assert (cond["status"], cond["reason"]) == ("True", "Associated")
        assert association["associationId"] in cond["message"]
        # Drift ticks (1 s here) re-read it every sixth tick (no watch covers it; the
        # production ratio: 300 s ticks, a check each 30 min), in between they read nothing;
        # no tick writes.
        reads = len(eks.calls)
        wait_for(lambda: len(eks.calls) >= reads + 2, timeout=15, what="a check at a tick")
        checked = len(eks.calls)
        time.sleep(3.5)  # three ticks or more, none of them a check
        assert len(eks.calls) == checked, [c.operation for c in eks.calls[checked:]]
        wait_for(lambda: len(eks.calls) >= checked + 2, timeout=15, what="the next check")
        assert [c.operation for c in eks.writes()] == ["CreatePodIdentityAssociation"]
        # Someone points it at another role: the next tick puts it back, with one write.
        client(eks).update_pod_identity_association(
            clusterName=CLUSTER, associationId=association["associationId"],
            roleArn=OTHER_ROLE)
        wait_for(lambda: eks.associations()[0]["roleArn"] == ROLE, timeout=15,
                 what="role restored")
        assert [c.operation for c in eks.writes()][-1] == "UpdatePodIdentityAssociation"
        # Someone deletes it: recreated.
        client(eks).delete_pod_identity_association(
            clusterName=CLUSTER, associationId=association["associationId"])
        wait_for(lambda: eks.associations(), timeout=15, what="association recreated")
        api.delete_ee(name)
        wait_for(lambda: api.ee(name) is None, what="environment gone")
    assert runner.exception is None, runner.stdout
    assert eks.associations() == []


@pytest.mark.parametrize(("settings", "reason"), [
    ({"denied": {"CreatePodIdentityAssociation"}}, "AccessDenied"),
    ({"eks_cluster_name": "staging"}, "ClusterNotFound"),
    ({"editor_role_arn": "arn:aws:iam::123456789012:role/typo"}, "RoleNotFound"),
], ids=["access-denied", "cluster-not-found", "role-not-found"])
def test_no_identity_is_reported_and_no_editor_starts_without_one(
    harness: Harness, eks: PodIdentityApi, settings: dict[str, Any], reason: str
) -> None:
    api, name = harness.api, "ameliastamps-website-nobody"
    eks.denied = set(settings.pop("denied", ()))
    with harness.run_operator(**pod_identity(eks, **TICKS, **settings)) as runner:
        api.create_ee(name, spec_for("nobody"))
        cond = wait_for(lambda: (c := identity(harness, name)) and c["status"] == "False" and c,
                        what="IdentityReady False")
        assert cond["reason"] == reason, cond
        ee = api.ee(name)
        assert ee is not None
        assert ee["status"]["phase"] == "Failed"
        assert (condition(ee, "Ready") or {}).get("reason") == reason
        assert (condition(ee, "WorkloadReady") or {}).get("reason") == "WaitingForIdentity"
        assert deployment(harness, name) is None
        assert (condition(ee, "QueuesReady") or {}).get("status") == "True"
        if eks.denied:  # the permission is granted: the next drift tick heals it
            eks.denied.clear()
            wait_for(lambda: is_reconciled(api.ee(name)), timeout=15, what="reconciled")
            assert deployment(harness, name) is not None
            assert len(eks.associations()) == 1
    assert runner.exception is None, runner.stdout


def test_a_foreign_association_is_reported_and_never_deleted(
    harness: Harness, eks: PodIdentityApi
) -> None:
    api, name = harness.api, "ameliastamps-website-jane"
    client(eks).create_pod_identity_association(
        clusterName=CLUSTER, namespace=NAMESPACE, serviceAccount=f"{name}-editor",
        roleArn=OTHER_ROLE)
    with harness.run_operator(**pod_identity(eks)) as runner:
        api.create_ee(name, spec_for("jane"))
        cond = wait_for(lambda: (c := identity(harness, name)) and c["status"] == "False" and c,
                        what="IdentityReady False")
        assert cond["reason"] == "AssociationConflict"
        assert "without webordinary ownership tags" in cond["message"]
        api.delete_ee(name)
        wait_for(lambda: api.ee(name) is None, what="environment gone")
    assert runner.exception is None, runner.stdout
    (left,) = eks.associations()
    assert left["roleArn"] == OTHER_ROLE
    assert [c.operation for c in eks.writes()] == ["CreatePodIdentityAssociation"]  # ours
