"""What a new environment reads on its way to Ready: nothing its watches already hold. Its pods
come from the pod watch once that has synced (a full reconcile of a starting editor listed
them: 5,000 LISTs in a 5,000-environment burst), and a refresh after a child's status change
takes the newest version of the environment the operator has seen (the create handler's own
status write) instead of reading it (about three GETs per environment). Production drift
interval."""

from __future__ import annotations

import time

import kopf
from kopf.testing import KopfRunner

from tests.integration.operator.conftest import NAMESPACE, Harness, is_ready, spec_for, wait_for
from webordinary.devkit.kubelet import deployment_status
from webordinary.operator.handlers import register

MERGE = "application/merge-patch+json"


def test_a_new_environment_reads_nothing_its_watches_hold(harness: Harness) -> None:
    api, kube = harness.api, harness.kube_api
    name = "acme-site-reads"
    deployment_path = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{name}-editor"
    claim_path = f"/api/v1/namespaces/{NAMESPACE}/persistentvolumeclaims/{name}-workspace"
    settings = harness.settings.model_copy(update={"drift_interval_seconds": 300.0})
    registry = kopf.OperatorRegistry()
    rt = register(registry, settings)
    key = (NAMESPACE, name)
    with KopfRunner(["run", "--standalone", "-A"], registry=registry) as runner:
        wait_for(lambda: rt.synced("Pod", NAMESPACE), what="the pod watch synced")
        kube.reset_counts()
        api.create_ee(name, spec_for("reads", idleTimeout="24h"))
        # Waiting on what the operator holds, so that the test itself reads only the
        # Deployment (once, for the status its controller would write).
        wait_for(lambda: rt.observed.get("Deployment", NAMESPACE, f"{name}-editor"),
                 what="the editor Deployment")
        wait_for(lambda: rt.observed.get("PersistentVolumeClaim", NAMESPACE,
                                         f"{name}-workspace"), what="the workspace PVC")
        deployment = api.get(deployment_path)
        # The cluster's controllers: the claim binds, the editor becomes available; each
        # change reaches the operator by its watch and refreshes the environment's status.
        api.call("PATCH", claim_path + "/status", {"status": {
            "phase": "Bound", "accessModes": ["ReadWriteMany"],
            "capacity": {"storage": "5Gi"}}}, MERGE)
        api.call("PATCH", deployment_path + "/status", {
            "status": deployment_status(deployment, running=True, ready=True)}, MERGE)
        wait_for(lambda: is_ready(dict(rt.latest.get(key) or {})), what="Ready")
        time.sleep(1.0)  # any refresh still running lands its reads
        reads = kube.read_counts()
        assert is_ready(api.ee(name)), "Ready as stored"
    assert runner.exception is None
    # (kopf's own first LISTs of environments and CRDs may fall after the reset)
    reads = {k: v for k, v in reads.items() if k.startswith("GET ") or k == "LIST pods"}
    assert reads == {"GET deployments": 1}, "the operator read no pod, environment or child"
