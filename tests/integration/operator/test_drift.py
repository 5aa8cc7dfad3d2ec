"""No write loop: an unchanged environment with every optional spec field set costs zero API
writes over many drift ticks, on an emulator that stores objects as a real server does
(empty optional fields dropped, quantities canonical)."""

from __future__ import annotations

import time
from typing import Any

import kopf
from kopf.testing import KopfRunner

from tests.integration.operator.conftest import NAMESPACE, Harness, is_ready, spec_for, wait_for
from tests.unit.operator.test_drift import every_optional_field
from webordinary.contracts.environment import LABEL_CLIENT
from webordinary.devkit.kubeapi import KubeAPI
from webordinary.devkit.kubelet import deployment_status
from webordinary.operator.handlers import register

MERGE = "application/merge-patch+json"
FIRST_TICK = 12.0  # s after the operator first sees the environment (kopf starts its timer)


def _settled(harness: Harness, name: str) -> dict[str, Any] | None:
    ee = harness.api.ee(name)
    status = (ee or {}).get("status") or {}
    deployment = harness.api.child("/apis/apps/v1", "deployments", f"{name}-editor")
    if ee and deployment and status.get("observedGeneration") == ee["metadata"]["generation"]:
        return ee
    return None


def test_unchanged_environment_with_every_optional_field_is_never_written(
    harness: Harness,
) -> None:
    api, kube = harness.api, harness.kube_api
    api.call("POST", f"/api/v1/namespaces/{NAMESPACE}/secrets", {
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "acme-git", "labels": {LABEL_CLIENT: "acme"}},
        "stringData": {"token": "t"}})
    name = "acme-site-ann"
    interval = 0.5
    with harness.run_operator(drift_interval_seconds=interval,
                              drift_initial_delay_seconds=interval) as runner:
        api.create_ee(name, every_optional_field())
        ee = wait_for(lambda: _settled(harness, name), what="reconciled with every child")
        assert not [c for c in ee["status"]["conditions"]
                    if c["reason"] in ("InvalidSpec", "Rejected", "ApplyFailed")], ee["status"]
        time.sleep(2.0)  # queued Events and the first ticks land
        before = dict(kube.write_counts())
        gets = kube.request_counts()["GET"]
        time.sleep(16 * interval)
        after = dict(kube.write_counts())
        reads = kube.request_counts()["GET"] - gets
    assert runner.exception is None
    assert reads >= 10 * 5, "drift ticks ran (each reads every child)"
    assert after == before, "an unchanged environment must not be written to"


def quiet(kube: KubeAPI, still: float = 1.5) -> int:
    """The emulator's GET count once it has not moved for `still` seconds."""
    count, since = kube.request_counts()["GET"], time.monotonic()
    while time.monotonic() - since < still:
        time.sleep(0.1)
        now = kube.request_counts()["GET"]
        if now != count:
            count, since = now, time.monotonic()
    return count


def test_a_drift_tick_after_the_workspace_binds_reads_nothing(harness: Harness) -> None:
    """The volume controller binds a new PVC after the operator created it (a status write and
    its bind annotations): that is no drift. Before, every environment's first drift tick
    after a creation burst re-read all its children (5,000 environments: 21,642 reads in one
    idle window). Production drift interval; the tick's own clock is the one compressed: the
    first tick comes soon (initial delay) and the last full reconcile is aged past the
    interval, so the tick is not skipped as "just reconciled" and must decide from the
    watches alone."""
    api, kube = harness.api, harness.kube_api
    name = "acme-site-bound"
    deployment_path = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{name}-editor"
    claim_path = f"/api/v1/namespaces/{NAMESPACE}/persistentvolumeclaims/{name}-workspace"
    settings = harness.settings.model_copy(update={
        "drift_interval_seconds": 300.0, "drift_initial_delay_seconds": FIRST_TICK})
    registry = kopf.OperatorRegistry()
    rt = register(registry, settings)
    with KopfRunner(["run", "--standalone", "-A"], registry=registry) as runner:
        uid = api.create_ee(name, spec_for("bound", idleTimeout="24h"))["metadata"]["uid"]
        created = time.monotonic()
        deployment = wait_for(lambda: api.get(deployment_path), what="the editor Deployment")
        wait_for(lambda: api.get(claim_path), what="the workspace PVC")
        # The cluster's controllers: the binder annotates and binds the claim, the Deployment
        # controller reports the editor available.
        api.call("PATCH", claim_path, {"metadata": {"annotations": {
            "pv.kubernetes.io/bind-completed": "yes",
            "pv.kubernetes.io/bound-by-controller": "yes"}},
            "spec": {"volumeName": "pvc-0c6c5b1e"}}, MERGE)
        api.call("PATCH", claim_path + "/status", {"status": {
            "phase": "Bound", "accessModes": ["ReadWriteMany"],
            "capacity": {"storage": "5Gi"}}}, MERGE)
        api.call("PATCH", deployment_path + "/status", {
            "status": deployment_status(deployment, running=True, ready=True)}, MERGE)
        wait_for(lambda: is_ready(api.ee(name)), what="Ready")
        claim_key = ("PersistentVolumeClaim", NAMESPACE, f"{name}-workspace")
        wait_for(lambda: ((rt.observed.get(*claim_key) or {}).get("status") or {}).get(
            "phase") == "Bound", what="the operator saw the claim bound")
        reads = quiet(kube)  # the controllers' status writes handled (their refreshes read)
        last = rt.last_done[uid] - 300.0
        rt.last_done[uid] = last  # as if the create was one drift interval ago
        assert time.monotonic() - created < FIRST_TICK - 1, "too slow to see the first tick"
        wait_for(lambda: rt.last_done[uid] != last, timeout=FIRST_TICK + 10,
                 what="the first drift tick")
        reads = kube.request_counts()["GET"] - reads
    assert runner.exception is None
    assert reads == 0, "a bound workspace made the drift tick re-read the environment"
