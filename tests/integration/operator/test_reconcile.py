"""The operator over real HTTP: emulator for Kubernetes, moto for SQS."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.integration.operator.conftest import (
    NAMESPACE,
    Harness,
    condition,
    is_ready,
    is_reconciled,
    spec_for,
    wait_for,
)

CHILDREN = [
    ("/api/v1", "serviceaccounts", "editor"),
    ("/api/v1", "persistentvolumeclaims", "workspace"),
    ("/api/v1", "services", "editor"),
    ("/apis/apps/v1", "deployments", "editor"),
    ("/apis/networking.k8s.io/v1", "networkpolicies", "editor"),
]


def test_create_to_ready_with_every_child_and_queue(harness: Harness,
                                                    kubelet: object) -> None:
    api = harness.api
    name = "ameliastamps-website-john"
    with harness.run_operator() as runner:
        created = api.create_ee(name, spec_for("john", sessions=["1a2b3c4d"]))
        ee = wait_for(lambda: (e := api.ee(name)) and is_ready(e) and e, what="Ready")
        events = wait_for(lambda: api.get(f"/api/v1/namespaces/{NAMESPACE}/events")["items"],
                          what="the Ready Event")
    assert runner.exception is None, runner.stdout
    assert [(e["reason"], e["type"]) for e in events] == [("Ready", "Normal")], events
    status = ee["status"]
    assert status["phase"] == "Ready"
    assert status["observedGeneration"] == created["metadata"]["generation"]
    for kind in ("QueuesReady", "StorageReady", "WorkloadReady", "RoutingReady", "Ready"):
        cond = condition(ee, kind)
        assert cond is not None
        assert cond["status"] == "True", cond
    assert harness.queue_names() == sorted(
        f"webordinary-{role}-{name}" for role in ("input", "output", "dlq"))
    urls = status["queues"]
    attributes = harness.sqs.get_queue_attributes(
        QueueUrl=urls["input"], AttributeNames=["All"])["Attributes"]
    redrive = json.loads(attributes["RedrivePolicy"])
    dlq_arn = harness.sqs.get_queue_attributes(
        QueueUrl=urls["dlq"], AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    assert redrive["deadLetterTargetArn"] == dlq_arn
    assert int(redrive["maxReceiveCount"]) == 3
    tags = harness.sqs.list_queue_tags(QueueUrl=urls["output"])["Tags"]
    assert tags == {"webordinary.dev/namespace": NAMESPACE, "webordinary.dev/name": name,
                    "webordinary.dev/uid": created["metadata"]["uid"],
                    "webordinary.dev/service-account": f"{name}-editor"}
    for group, plural, role in CHILDREN:
        child = api.child(group, plural, f"{name}-{role}")
        assert child is not None, (plural, role)
        refs = child["metadata"].get("ownerReferences", [])
        if plural == "persistentvolumeclaims":
            assert refs == []
        else:
            assert refs[0]["uid"] == created["metadata"]["uid"]
    deployment = api.child("/apis/apps/v1", "deployments", f"{name}-editor")
    env = {e["name"]: e.get("value") for e in
           deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["WEBORDINARY_INPUT_QUEUE_URL"] == urls["input"]
    assert deployment["spec"]["replicas"] == 1
    # Previews go through the gateway: no Ingress per environment.
    assert api.child("/apis/networking.k8s.io/v1", "ingresses", f"{name}-preview") is None


def _deployment(harness: Harness, name: str) -> dict[str, Any]:
    result: dict[str, Any] = harness.api.child("/apis/apps/v1", "deployments", f"{name}-editor")
    return result


def _env(deployment: dict[str, Any]) -> dict[str, str | None]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value") for e in container["env"]}


def test_spec_change_updates_children_and_queues(harness: Harness) -> None:
    api = harness.api
    name = "ameliastamps-website-mary"
    with harness.run_operator(editor_allowed_images=["registry.example/editor:*"]) as runner:
        api.create_ee(name, spec_for("mary", sessions=["aaa111"]))
        wait_for(lambda: is_reconciled(api.ee(name)), what="Ready")
        api.patch_ee(name, {"spec": {
            "sessions": ["aaa111", "bbb222"], "idleTimeout": "45m",
            "editor": {"image": "registry.example/editor:2", "env": [
                {"name": "LOG_LEVEL", "value": "debug"}]},
            "queues": {"maxReceiveCount": 7, "visibilityTimeout": 120},
        }})

        def updated() -> bool:
            ee = api.ee(name) or {}
            return (ee.get("status", {}).get("observedGeneration") == ee["metadata"]["generation"]
                    and is_reconciled(ee))

        wait_for(updated, what="new generation observed")
    assert runner.exception is None
    assert api.child("/apis/networking.k8s.io/v1", "ingresses", f"{name}-preview") is None
    deployment = _deployment(harness, name)
    env = _env(deployment)
    assert env["WEBORDINARY_IDLE_TIMEOUT_SECONDS"] == str(45 * 60)
    assert env["LOG_LEVEL"] == "debug"
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == (
        "registry.example/editor:2")
    ee = api.ee(name) or {}
    assert ee["status"]["sessionCount"] == 2
    attributes = harness.sqs.get_queue_attributes(
        QueueUrl=ee["status"]["queues"]["input"], AttributeNames=["All"])["Attributes"]
    assert int(json.loads(attributes["RedrivePolicy"])["maxReceiveCount"]) == 7
    assert attributes["VisibilityTimeout"] == "120"
    assert len(harness.queue_names()) == 3


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"idleTimeout": "0s"}, "spec.idleTimeout"),
        ({"editor": {"env": [{"name": "WEBORDINARY_INPUT_QUEUE_URL", "value": "x"}]}},
         "spec.editor.env[0].name"),
    ],
)
def test_invalid_spec_is_reported_with_the_field(
    harness: Harness, patch: dict[str, Any], field: str
) -> None:
    api = harness.api
    name = "ameliastamps-website-bad"
    with harness.run_operator() as runner:
        api.create_ee(name, spec_for("bad", **patch))

        def invalid() -> dict[str, Any] | None:
            cond = condition(api.ee(name), "Ready")
            return cond if cond and cond["reason"] == "InvalidSpec" else None

        cond = wait_for(invalid, what="InvalidSpec")
        ee = api.ee(name) or {}
        assert cond["status"] == "False"
        assert cond["message"].startswith(field), cond["message"]
        assert ee["status"]["phase"] == "Failed"
        assert api.child("/apis/apps/v1", "deployments", f"{name}-editor") is None
        assert harness.queue_names() == []
        # Fixing the spec recovers without a restart.
        fixed = {"spec": {"idleTimeout": "20m", "editor": {"env": []}}}
        api.patch_ee(name, fixed)
        wait_for(lambda: is_reconciled(api.ee(name)), what="Ready after the fix")
    assert runner.exception is None


def test_deleted_children_come_back_at_once(harness: Harness) -> None:
    """With the production drift interval (300 s): a deleted child is a watch event, and the
    operator puts it back then, not at the next drift tick."""
    api = harness.api
    name = "ameliastamps-website-deleted"
    with harness.run_operator() as runner:
        api.create_ee(name, spec_for("deleted", sessions=["c0ffee"]))
        wait_for(lambda: is_reconciled(api.ee(name)), what="reconciled")
        for group_path, plural, role in CHILDREN:
            child = f"{name}-{role}"
            old = api.child(group_path, plural, child)
            api.call("DELETE", f"{group_path}/namespaces/{NAMESPACE}/{plural}/{child}")
            back = wait_for(
                lambda g=group_path, p=plural, c=child: (
                    (o := api.child(g, p, c)) and not o["metadata"].get("deletionTimestamp")
                    and o),
                timeout=10, what=f"{plural}/{child} recreated")
            assert back["metadata"]["uid"] != old["metadata"]["uid"]
        wait_for(lambda: is_reconciled(api.ee(name)), what="reconciled again")
    assert runner.exception is None, runner.stdout


def test_a_deleted_queue_comes_back_at_a_drift_tick(harness: Harness) -> None:
    """No watch covers SQS: the drift tick is what notices a deleted queue (1 s ticks here:
    the tick itself is under test)."""
    api = harness.api
    name = "ameliastamps-website-drift"
    with harness.run_operator(drift_interval_seconds=1.0,
                              drift_initial_delay_seconds=1.0) as runner:
        api.create_ee(name, spec_for("drift", sessions=["c0ffee"]))
        ee = wait_for(lambda: (e := api.ee(name)) and is_reconciled(e) and e, what="Ready")
        harness.sqs.delete_queue(QueueUrl=ee["status"]["queues"]["output"])
        wait_for(lambda: f"webordinary-output-{name}" in harness.queue_names(), timeout=15,
                 what="output queue recreated")
        wait_for(lambda: is_reconciled(api.ee(name)), what="Ready again")
    assert runner.exception is None
    assert len(harness.queue_names()) == 3


def test_upgrade_removes_the_per_environment_ingress_of_earlier_versions(
    harness: Harness,
) -> None:
    api = harness.api
    name = "ameliastamps-website-upgrade"
    path = f"/apis/networking.k8s.io/v1/namespaces/{NAMESPACE}/ingresses"
    with harness.run_operator() as runner:
        created = api.create_ee(name, spec_for("upgrade", sessions=["abc123"]))
        wait_for(lambda: is_reconciled(api.ee(name)), what="reconciled")
    assert runner.exception is None
    # What the operator wrote before the gateway existed, and an SRE's Ingress of its own.
    owner = {"apiVersion": created["apiVersion"], "kind": "EditEnvironment", "name": name,
             "uid": created["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}
    backend = {"service": {"name": f"{name}-editor", "port": {"name": "preview"}}}
    for ingress_name, refs in ((f"{name}-preview", [owner]), ("sre-own", [])):
        api.call("POST", path, {
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": ingress_name, "ownerReferences": refs},
            "spec": {"ingressClassName": "alb", "rules": [{"http": {"paths": [
                {"path": "/session/abc123", "pathType": "Prefix", "backend": backend}]}}]},
        })
    with harness.run_operator() as runner:
        wait_for(lambda: api.child("/apis/networking.k8s.io/v1", "ingresses",
                                   f"{name}-preview") is None,
                 timeout=15, what="the old Ingress removed on resume")
    assert runner.exception is None
    assert api.child("/apis/networking.k8s.io/v1", "ingresses", "sre-own") is not None
    assert is_reconciled(api.ee(name))
    policy = api.child("/apis/networking.k8s.io/v1", "networkpolicies", f"{name}-editor")
    (previews, *_) = policy["spec"]["ingress"]
    assert previews["ports"] == [{"protocol": "TCP", "port": 4321}]
    assert previews["from"][0]["podSelector"]["matchLabels"][
        "app.kubernetes.io/component"] == "gateway"


def test_delete_removes_queues_and_keeps_the_workspace(harness: Harness) -> None:
    api = harness.api
    keep, drop = "ameliastamps-website-keep", "ameliastamps-website-drop"
    with harness.run_operator() as runner:
        api.create_ee(keep, spec_for("keep"))
        api.create_ee(drop, spec_for("drop", storage={"deletionPolicy": "Delete"},
                                     queues={"deletionPolicy": "Retain"}))
        wait_for(lambda: is_reconciled(api.ee(keep)) and is_reconciled(api.ee(drop)),
                 what="both Ready")
        assert len(harness.queue_names()) == 6
        api.delete_ee(keep)
        api.delete_ee(drop)
        wait_for(lambda: api.ee(keep) is None and api.ee(drop) is None, what="both gone")
    assert runner.exception is None
    assert harness.queue_names() == sorted(
        f"webordinary-{role}-{drop}" for role in ("input", "output", "dlq"))
    assert api.child("/api/v1", "persistentvolumeclaims", f"{keep}-workspace") is not None
    wait_for(lambda: api.child("/api/v1", "persistentvolumeclaims", f"{drop}-workspace") is None,
             timeout=5, what="workspace of the Delete policy removed")
    wait_for(lambda: api.child("/apis/apps/v1", "deployments", f"{keep}-editor") is None,
             timeout=5, what="owned children garbage-collected")


def test_foreign_queue_is_a_clear_error(harness: Harness) -> None:
    api = harness.api
    name = "ameliastamps-website-taken"
    harness.sqs.create_queue(QueueName=f"webordinary-output-{name}",
                             tags={"team": "someone-else"})
    with harness.run_operator() as runner:
        api.create_ee(name, spec_for("taken"))

        def conflict() -> dict[str, Any] | None:
            cond = condition(api.ee(name), "QueuesReady")
            return cond if cond and cond["reason"] == "QueueConflict" else None

        cond = wait_for(conflict, what="QueueConflict")
        assert f"webordinary-output-{name}" in cond["message"]
        assert (api.ee(name) or {})["status"]["phase"] == "Failed"
    assert runner.exception is None
    tags = harness.sqs.list_queue_tags(QueueUrl=harness.sqs.get_queue_url(
        QueueName=f"webordinary-output-{name}")["QueueUrl"])["Tags"]
    assert tags == {"team": "someone-else"}, "a foreign queue must not be touched"


def test_idle_environments_cost_no_writes(harness: Harness) -> None:
    api, kube = harness.api, harness.kube_api
    names = [f"ameliastamps-website-w{i}" for i in range(3)]
    # the drift ticks are under test: 1 s apart here (production: 300 s)
    with harness.run_operator(drift_interval_seconds=1.0,
                              drift_initial_delay_seconds=1.0) as runner:
        kube.reset_counts()
        for name in names:
            api.create_ee(name, spec_for(name.rsplit("-", 1)[-1], sessions=["abc123"]))
        wait_for(lambda: all(is_reconciled(api.ee(n)) for n in names), what="Ready")
        time.sleep(1.5)  # queued Events land
        created = dict(kube.write_counts())
        before_gets = kube.request_counts()["GET"]
        time.sleep(3.5)  # several drift ticks (1 s interval in tests)
        after = dict(kube.write_counts())
        ticks_read = kube.request_counts()["GET"] - before_gets
        events = api.get(f"/api/v1/namespaces/{NAMESPACE}/events")["items"]
    assert runner.exception is None
    operator_writes = sum(created.values()) - len(names)  # minus the test's own creates
    assert operator_writes <= 11 * len(names), created
    # Events for what a person needs: no kopf handler successes, no steps on the way
    # (these editors never start: there is no kubelet here, so no Ready either).
    assert [(e["involvedObject"]["name"], e["reason"]) for e in events] == []
    assert ticks_read >= 6 * len(names), "drift ticks ran (they read every child)"
    assert after == created, "an unchanged environment must not be written to"
