"""The strict Kubernetes API emulator's contract, checked over real HTTP."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.devkit.conftest import FIXTURES
from tests.plugins.kube import REPO_CRDS, KubeHTTP
from webordinary.devkit.kubeapi import KubeAPI, start_kube_api

WIDGETS = "/apis/test.webordinary.dev/v1/namespaces/shop/widgets"
DEPLOYMENTS = "/apis/apps/v1/namespaces/shop/deployments"
CONFIGMAPS = "/api/v1/namespaces/shop/configmaps"


@pytest.fixture
def api() -> Iterator[KubeAPI]:
    api = start_kube_api([FIXTURES, REPO_CRDS])
    api.create_namespaces("shop", "other", "team-a", "temp", "webordinary")
    yield api
    api.stop()


def widget(name: str = "w1", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "test.webordinary.dev/v1", "kind": "Widget",
            "metadata": {"name": name}, "spec": {"owner": "bob", **spec}}


def deployment(name: str = "web", image: str = "nginx:1.27") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{
                    "name": "main", "image": image,
                    "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                    "ports": [{"containerPort": 80}],
                }]},
            },
        },
    }


def configmap(name: str, owner: dict[str, Any] | None = None, **meta: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, **meta}
    if owner is not None:
        metadata["ownerReferences"] = [{
            "apiVersion": owner["apiVersion"], "kind": owner["kind"],
            "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
            "controller": True, "blockOwnerDeletion": True,
        }]
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": {"k": "v"}}


def created(response: Any) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def wait_for(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


def assert_status(response: Any, code: int, reason: str) -> dict[str, Any]:
    assert response.status_code == code, response.text
    body: dict[str, Any] = response.json()
    assert body["kind"] == "Status"
    assert body["apiVersion"] == "v1"
    assert body["status"] == "Failure"
    assert body["code"] == code
    assert body["reason"] == reason
    assert body["message"]
    assert isinstance(body["details"], dict)
    return body


# -- metadata ------------------------------------------------------------------------------

def test_create_fills_server_metadata(http: KubeHTTP) -> None:
    first = created(http.post(WIDGETS, widget("w1")))
    second = created(http.post(WIDGETS, widget("w2")))
    meta = first["metadata"]
    assert meta["namespace"] == "shop"
    assert isinstance(meta["resourceVersion"], str)
    assert int(second["metadata"]["resourceVersion"]) > int(meta["resourceVersion"])
    assert len(meta["uid"]) == 36
    assert meta["uid"] != second["metadata"]["uid"]
    assert meta["creationTimestamp"].endswith("Z")
    assert meta["generation"] == 1
    assert "status" not in first


def test_generate_name(http: KubeHTTP) -> None:
    body = configmap("")
    body["metadata"] = {"generateName": "cfg-"}
    obj = created(http.post(CONFIGMAPS, body))
    name = obj["metadata"]["name"]
    assert name.startswith("cfg-")
    assert len(name) == len("cfg-") + 5
    missing = http.post(CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}})
    assert "name or generateName is required" in assert_status(missing, 422, "Invalid")["message"]


def test_bodies_are_decoded_as_strictly_as_go_does(http: KubeHTTP) -> None:
    """Malformed JSON, NaN and Infinity (Go's decoder refuses them) are 400; text in any
    script comes back as sent."""
    headers = {"Content-Type": "application/json"}
    for bad in (b"{not json", b'{"apiVersion": "v1", "kind": "ConfigMap", "data": NaN}',
                b'{"metadata": {"name": "x"}, "data": {"k": Infinity}}'):
        response = http.session.post(http.url + CONFIGMAPS, data=bad, headers=headers,
                                     timeout=10)
        assert "cannot be decoded" in assert_status(response, 400, "BadRequest")["message"]
    body = configmap("text")
    body["data"] = {"k": "héllo wörld ✓ 日本", "quote": 'a "b" \\ c'}
    answer = created(http.post(CONFIGMAPS, body))
    assert answer["data"] == body["data"]
    again = http.get(f"{CONFIGMAPS}/text")
    assert again.status_code == 200, again.text
    assert again.json()["data"] == body["data"]


def test_namespace_from_url_and_mismatch(http: KubeHTTP) -> None:
    body = configmap("c1", namespace="elsewhere")
    assert_status(http.post(CONFIGMAPS, body), 400, "BadRequest")
    assert created(http.post(CONFIGMAPS, configmap("c1")))["metadata"]["namespace"] == "shop"


def test_list_has_kind_api_version_and_resource_version(http: KubeHTTP) -> None:
    created(http.post(DEPLOYMENTS, deployment()))
    created(http.post(WIDGETS, widget()))
    deployments = http.get(DEPLOYMENTS).json()
    assert deployments["kind"] == "DeploymentList"
    assert deployments["apiVersion"] == "apps/v1"
    assert deployments["metadata"]["resourceVersion"].isdigit()
    assert "continue" not in deployments["metadata"]
    assert [d["metadata"]["name"] for d in deployments["items"]] == ["web"]
    widgets = http.get("/apis/test.webordinary.dev/v1/widgets").json()
    assert widgets["kind"] == "WidgetList"
    assert widgets["items"][0]["kind"] == "Widget"


def test_generation_bumps_on_spec_changes_only_for_custom_resources(http: KubeHTTP) -> None:
    created(http.post(WIDGETS, widget()))
    labelled = http.patch(f"{WIDGETS}/w1", {"metadata": {"labels": {"a": "b"}}}).json()
    assert labelled["metadata"]["generation"] == 1
    status = http.patch(f"{WIDGETS}/w1/status", {"status": {"phase": "Ready"}}).json()
    assert status["metadata"]["generation"] == 1
    changed = http.patch(f"{WIDGETS}/w1", {"spec": {"size": 5}}).json()
    assert changed["metadata"]["generation"] == 2
    same = http.patch(f"{WIDGETS}/w1", {"spec": {"size": 5}}).json()
    assert same["metadata"]["generation"] == 2
    assert same["metadata"]["resourceVersion"] == changed["metadata"]["resourceVersion"]


def test_generation_bumps_on_spec_changes_only_for_builtins(http: KubeHTTP) -> None:
    created(http.post(DEPLOYMENTS, deployment()))
    annotated = http.patch(f"{DEPLOYMENTS}/web", {"metadata": {"annotations": {"a": "b"}}})
    assert annotated.json()["metadata"]["generation"] == 1
    status = http.patch(f"{DEPLOYMENTS}/web/status", {"status": {"replicas": 1}})
    assert status.json()["metadata"]["generation"] == 1
    scaled = http.patch(f"{DEPLOYMENTS}/web", {"spec": {"replicas": 3}})
    assert scaled.json()["metadata"]["generation"] == 2


# -- errors --------------------------------------------------------------------------------

def test_not_found_is_a_status(http: KubeHTTP) -> None:
    body = assert_status(http.get(f"{WIDGETS}/nope"), 404, "NotFound")
    assert body["message"] == 'widgets.test.webordinary.dev "nope" not found'
    assert body["details"] == {"name": "nope", "group": "test.webordinary.dev",
                               "kind": "widgets"}
    assert_status(http.get("/apis/nothing.example/v1/things"), 404, "NotFound")
    assert_status(http.patch(f"{CONFIGMAPS}/nope", {"data": {}}), 404, "NotFound")
    assert_status(http.delete(f"{CONFIGMAPS}/nope"), 404, "NotFound")


def test_create_existing_is_already_exists(http: KubeHTTP) -> None:
    created(http.post(WIDGETS, widget()))
    body = assert_status(http.post(WIDGETS, widget()), 409, "AlreadyExists")
    assert body["details"]["name"] == "w1"


def test_stale_resource_version_conflicts(http: KubeHTTP) -> None:
    obj = created(http.post(WIDGETS, widget()))
    stale = dict(obj, spec={"owner": "bob", "size": 4})
    fresh = http.put(f"{WIDGETS}/w1", stale)
    assert fresh.status_code == 200, fresh.text
    assert_status(http.put(f"{WIDGETS}/w1", stale), 409, "Conflict")
    old_rv = obj["metadata"]["resourceVersion"]
    patch = {"metadata": {"resourceVersion": old_rv}, "spec": {"size": 6}}
    assert_status(http.patch(f"{WIDGETS}/w1", patch), 409, "Conflict")
    current = fresh.json()["metadata"]["resourceVersion"]
    patch["metadata"]["resourceVersion"] = current
    assert http.patch(f"{WIDGETS}/w1", patch).status_code == 200


def test_put_of_a_custom_resource_needs_a_resource_version(http: KubeHTTP) -> None:
    obj = created(http.post(WIDGETS, widget()))
    del obj["metadata"]["resourceVersion"]
    body = assert_status(http.put(f"{WIDGETS}/w1", obj), 422, "Invalid")
    assert "metadata.resourceVersion" in body["message"]


# -- patches -------------------------------------------------------------------------------

def test_json_patch_test_op_failure_is_422(http: KubeHTTP) -> None:
    obj = created(http.post(WIDGETS, widget()))
    rv = obj["metadata"]["resourceVersion"]
    ops = [{"op": "test", "path": "/metadata/resourceVersion", "value": "999"},
           {"op": "add", "path": "/metadata/finalizers", "value": ["x.dev/f"]}]
    assert_status(http.patch(f"{WIDGETS}/w1", ops, "json"), 422, "Invalid")
    ops[0]["value"] = rv
    patched = http.patch(f"{WIDGETS}/w1", ops, "json")
    assert patched.status_code == 200, patched.text
    assert patched.json()["metadata"]["finalizers"] == ["x.dev/f"]
    missing = [{"op": "replace", "path": "/spec/nothing/here", "value": 1}]
    assert_status(http.patch(f"{WIDGETS}/w1", missing, "json"), 422, "Invalid")


def test_merge_patch_replaces_lists_and_null_deletes(http: KubeHTTP) -> None:
    created(http.post(DEPLOYMENTS, deployment()))
    patch = {"metadata": {"labels": {"x": "1"}},
             "spec": {"template": {"spec": {"containers": [{"name": "main", "image": "a:2"}]}}}}
    obj = http.patch(f"{DEPLOYMENTS}/web", patch).json()
    container = obj["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "a:2"
    assert "env" not in container
    obj = http.patch(f"{DEPLOYMENTS}/web", {"metadata": {"labels": {"x": None}}}).json()
    assert "x" not in (obj["metadata"].get("labels") or {})


def test_strategic_merge_patch_merges_lists_by_key(http: KubeHTTP) -> None:
    created(http.post(DEPLOYMENTS, deployment()))
    patch = {"spec": {"template": {"spec": {
        "containers": [{"name": "main", "image": "nginx:1.28",
                        "env": [{"name": "B", "value": "changed"}, {"name": "C", "value": "3"}]},
                       {"name": "sidecar", "image": "busybox:1"}],
    }}}}
    obj = http.patch(f"{DEPLOYMENTS}/web", patch, "strategic").json()
    containers = obj["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["main", "sidecar"]
    assert containers[0]["image"] == "nginx:1.28"
    assert containers[0]["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert containers[0]["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "changed"},
                                    {"name": "C", "value": "3"}]
    delete = {"spec": {"template": {"spec": {
        "containers": [{"name": "sidecar", "$patch": "delete"}]}}}}
    obj = http.patch(f"{DEPLOYMENTS}/web", delete, "strategic").json()
    assert [c["name"] for c in obj["spec"]["template"]["spec"]["containers"]] == ["main"]


def test_strategic_merge_patch_is_refused_for_custom_resources(http: KubeHTTP) -> None:
    created(http.post(WIDGETS, widget()))
    assert_status(http.patch(f"{WIDGETS}/w1", {"spec": {"size": 2}}, "strategic"), 415,
                  "UnsupportedMediaType")


def test_server_side_apply_creates_then_merges(http: KubeHTTP) -> None:
    body = configmap("applied")
    assert_status(http.patch(f"{CONFIGMAPS}/applied", body, "apply"), 400, "BadRequest")
    first = http.patch(f"{CONFIGMAPS}/applied", body, "apply", fieldManager="test")
    assert first.status_code == 201, first.text
    body["data"] = {"other": "x"}
    second = http.patch(f"{CONFIGMAPS}/applied", body, "apply", fieldManager="test")
    assert second.status_code == 200
    assert second.json()["data"] == {"k": "v", "other": "x"}


# -- status subresource --------------------------------------------------------------------

def test_status_subresource_separation_for_custom_resources(http: KubeHTTP) -> None:
    body = widget()
    body["status"] = {"phase": "Forged"}
    obj = created(http.post(WIDGETS, body))
    assert "status" not in obj
    obj = http.patch(f"{WIDGETS}/w1", {"status": {"phase": "Forged"}, "spec": {"size": 2}}).json()
    assert "status" not in obj
    assert obj["spec"]["size"] == 2
    obj = http.patch(f"{WIDGETS}/w1/status",
                     {"status": {"phase": "Ready"}, "spec": {"size": 9}}).json()
    assert obj["status"] == {"phase": "Ready"}
    assert obj["spec"]["size"] == 2
    obj["spec"]["size"] = 7
    obj["status"] = {"phase": "Put"}
    put = http.put(f"{WIDGETS}/w1", obj).json()
    assert put["spec"]["size"] == 7
    assert put["status"] == {"phase": "Ready"}
    put["status"] = {"phase": "PutStatus"}
    put["spec"]["size"] = 1
    status = http.put(f"{WIDGETS}/w1/status", put).json()
    assert status["status"] == {"phase": "PutStatus"}
    assert status["spec"]["size"] == 7


def test_status_subresource_separation_for_builtins(http: KubeHTTP) -> None:
    body = deployment()
    body["status"] = {"replicas": 5}
    obj = created(http.post(DEPLOYMENTS, body))
    assert obj["status"] == {}
    obj = http.patch(f"{DEPLOYMENTS}/web", {"status": {"replicas": 5}}).json()
    assert obj["status"] == {}
    obj = http.patch(f"{DEPLOYMENTS}/web/status",
                     {"status": {"readyReplicas": 1}, "spec": {"replicas": 4}}).json()
    assert obj["status"] == {"readyReplicas": 1}
    assert obj["spec"]["replicas"] == 1
    assert_status(http.get(f"{CONFIGMAPS}/x/status"), 404, "NotFound")


def test_builtin_status_writes_validate_and_normalise_the_status(http: KubeHTTP) -> None:
    """As the real server's status strategies: the status is schema-checked (the stored spec
    and metadata are not re-validated: a status write cannot change them) and its empty
    optional fields are dropped."""
    created(http.post(DEPLOYMENTS, deployment()))
    body = assert_status(http.patch(f"{DEPLOYMENTS}/web/status", {"status": {"replicas": "two"}}),
                         422, "Invalid")
    assert [c["field"] for c in body["details"]["causes"]] == ["status.replicas"], body
    body = assert_status(http.patch(f"{DEPLOYMENTS}/web/status",
                                    {"status": {"conditions": [{"status": "True"}]}}),
                         422, "Invalid")
    assert "status.conditions[0].type" in [c["field"] for c in body["details"]["causes"]]
    obj = http.patch(f"{DEPLOYMENTS}/web/status",
                     {"status": {"replicas": 1, "conditions": [], "collisionCount": None}}).json()
    assert obj["status"] == {"replicas": 1}
    assert obj["spec"]["replicas"] == 1


# -- finalizers and deletion ---------------------------------------------------------------

def test_delete_with_finalizers_marks_then_removes(http: KubeHTTP) -> None:
    body = widget()
    body["metadata"]["finalizers"] = ["test.webordinary.dev/f"]
    created(http.post(WIDGETS, body))
    marked = http.delete(f"{WIDGETS}/w1")
    assert marked.status_code == 200
    assert marked.json()["metadata"]["deletionTimestamp"]
    still = http.get(f"{WIDGETS}/w1").json()
    assert still["metadata"]["deletionTimestamp"]
    again = http.delete(f"{WIDGETS}/w1")
    assert again.status_code == 200
    added = http.patch(f"{WIDGETS}/w1", {"metadata": {"finalizers": ["a.dev/f", "b.dev/g"]}})
    assert_status(added, 422, "Invalid")
    released = http.patch(f"{WIDGETS}/w1", {"metadata": {"finalizers": None}})
    assert released.status_code == 200
    assert_status(http.get(f"{WIDGETS}/w1"), 404, "NotFound")


def test_delete_without_finalizers_is_immediate(http: KubeHTTP) -> None:
    created(http.post(CONFIGMAPS, configmap("c1")))
    response = http.delete(f"{CONFIGMAPS}/c1")
    assert response.status_code == 200
    assert response.json()["status"] == "Success"
    assert_status(http.get(f"{CONFIGMAPS}/c1"), 404, "NotFound")
    created(http.post(WIDGETS, widget()))
    assert http.delete(f"{WIDGETS}/w1").json()["kind"] == "Widget"


def test_delete_preconditions(http: KubeHTTP) -> None:
    created(http.post(CONFIGMAPS, configmap("c1")))
    wrong = {"preconditions": {"uid": "00000000-0000-0000-0000-000000000000"}}
    assert_status(http.delete(f"{CONFIGMAPS}/c1", wrong), 409, "Conflict")


# -- garbage collection --------------------------------------------------------------------

def test_owner_deletion_cascades_transitively(http: KubeHTTP) -> None:
    owner = created(http.post(WIDGETS, widget()))
    child = created(http.post(DEPLOYMENTS, dict(deployment(), metadata={
        "name": "web", "ownerReferences": configmap("x", owner)["metadata"]["ownerReferences"]})))
    grandchild = created(http.post(CONFIGMAPS, configmap("gc", child)))
    kept = created(http.post(CONFIGMAPS, configmap("finalized", owner,
                                                   finalizers=["test.webordinary.dev/keep"])))
    assert grandchild
    assert kept
    http.delete(f"{WIDGETS}/w1")
    wait_for(lambda: http.get(f"{DEPLOYMENTS}/web").status_code == 404)
    wait_for(lambda: http.get(f"{CONFIGMAPS}/gc").status_code == 404)
    pending = http.get(f"{CONFIGMAPS}/finalized").json()
    assert pending["metadata"]["deletionTimestamp"]


def test_dependent_with_a_surviving_owner_is_unlinked_not_deleted(http: KubeHTTP) -> None:
    first = created(http.post(WIDGETS, widget("a")))
    second = created(http.post(WIDGETS, widget("b")))
    body = configmap("shared", first)
    body["metadata"]["ownerReferences"] += [
        dict(configmap("x", second)["metadata"]["ownerReferences"][0], controller=False)]
    created(http.post(CONFIGMAPS, body))
    http.delete(f"{WIDGETS}/a")
    wait_for(lambda: len(http.get(f"{CONFIGMAPS}/shared").json()["metadata"]
                         ["ownerReferences"]) == 1)
    assert http.get(f"{CONFIGMAPS}/shared").json()["metadata"]["ownerReferences"][0]["name"] == "b"


def test_orphan_propagation_keeps_dependents(http: KubeHTTP) -> None:
    owner = created(http.post(WIDGETS, widget()))
    created(http.post(CONFIGMAPS, configmap("child", owner)))
    http.delete(f"{WIDGETS}/w1", {"propagationPolicy": "Orphan"})
    time.sleep(0.1)
    child = http.get(f"{CONFIGMAPS}/child").json()
    assert "ownerReferences" not in child["metadata"]


def test_foreground_deletion_waits_for_dependents(http: KubeHTTP) -> None:
    owner = created(http.post(WIDGETS, widget()))
    created(http.post(CONFIGMAPS, configmap("child", owner)))
    marked = http.delete(f"{WIDGETS}/w1", {"propagationPolicy": "Foreground"}).json()
    assert "foregroundDeletion" in marked["metadata"]["finalizers"]
    wait_for(lambda: http.get(f"{WIDGETS}/w1").status_code == 404)
    assert http.get(f"{CONFIGMAPS}/child").status_code == 404


def test_dangling_owner_reference_is_collected(http: KubeHTTP) -> None:
    ghost = {"apiVersion": "test.webordinary.dev/v1", "kind": "Widget",
             "metadata": {"name": "ghost", "uid": "11111111-2222-3333-4444-555555555555"}}
    created(http.post(CONFIGMAPS, configmap("orphan", ghost)))
    wait_for(lambda: http.get(f"{CONFIGMAPS}/orphan").status_code == 404)
    elsewhere = created(http.post("/apis/test.webordinary.dev/v1/namespaces/other/widgets",
                                  widget()))
    created(http.post(CONFIGMAPS, configmap("cross-namespace", elsewhere)))
    wait_for(lambda: http.get(f"{CONFIGMAPS}/cross-namespace").status_code == 404)


# -- selectors and paging ------------------------------------------------------------------

def names(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["metadata"]["name"] for item in response.json()["items"]]


def test_label_selectors(http: KubeHTTP) -> None:
    for name, labels in [("a", {"env": "prod", "tier": "web"}), ("b", {"env": "dev"}),
                         ("c", {"tier": "db"})]:
        created(http.post(CONFIGMAPS, configmap(name, labels=labels)))
    cases = {
        "env=prod": ["a"], "env==dev": ["b"], "env!=prod": ["b", "c"],
        "env in (prod,dev)": ["a", "b"], "env notin (prod)": ["b", "c"], "tier": ["a", "c"],
        "!tier": ["b"], "env=prod,tier=web": ["a"], "": ["a", "b", "c"],
    }
    for selector, expected in cases.items():
        assert names(http.get(CONFIGMAPS, labelSelector=selector)) == expected, selector
    assert_status(http.get(CONFIGMAPS, labelSelector="env in prod"), 400, "BadRequest")


def test_field_selectors(http: KubeHTTP) -> None:
    created(http.post(CONFIGMAPS, configmap("a")))
    created(http.post("/api/v1/namespaces/other/configmaps", configmap("b")))
    every = "/api/v1/configmaps"
    assert names(http.get(every, fieldSelector="metadata.name=a")) == ["a"]
    assert names(http.get(every, fieldSelector="metadata.namespace=other")) == ["b"]
    assert names(http.get(every, fieldSelector="metadata.namespace!=other")) == ["a"]
    assert_status(http.get(every, fieldSelector="spec.nothing=1"), 400, "BadRequest")


def test_limit_and_continue_page_through_everything(http: KubeHTTP) -> None:
    for index in range(5):
        created(http.post(CONFIGMAPS, configmap(f"c{index}")))
    seen: list[str] = []
    page = http.get(CONFIGMAPS, limit=2).json()
    while True:
        seen += [item["metadata"]["name"] for item in page["items"]]
        token = page["metadata"].get("continue")
        if not token:
            break
        page = http.get(CONFIGMAPS, limit=2, **{"continue": token}).json()
    assert seen == [f"c{index}" for index in range(5)]


def test_namespaces_are_listed(http: KubeHTTP) -> None:
    created(http.post("/api/v1/namespaces/team-a/configmaps", configmap("c")))
    listed = names(http.get("/api/v1/namespaces"))
    assert {"default", "team-a"} <= set(listed)
    assert http.get("/api/v1/namespaces/team-a").json()["status"]["phase"] == "Active"


def test_namespace_deletion_removes_its_contents(http: KubeHTTP) -> None:
    created(http.post("/api/v1/namespaces/temp/configmaps", configmap("c")))
    assert http.delete("/api/v1/namespaces/temp").status_code == 200
    wait_for(lambda: http.get("/api/v1/namespaces/temp").status_code == 404)
    assert http.get("/api/v1/namespaces/temp/configmaps/c").status_code == 404
    assert_status(http.delete("/api/v1/namespaces/default"), 403, "Forbidden")


# -- watch ---------------------------------------------------------------------------------

def test_watch_resumes_from_a_resource_version(http: KubeHTTP) -> None:
    first = created(http.post(CONFIGMAPS, configmap("a")))
    since = first["metadata"]["resourceVersion"]
    created(http.post(CONFIGMAPS, configmap("b")))
    http.patch(f"{CONFIGMAPS}/a", {"data": {"k": "2"}})
    http.delete(f"{CONFIGMAPS}/b")
    events = http.watch(CONFIGMAPS, resourceVersion=since)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b")]
    assert events[1]["object"]["data"] == {"k": "2"}
    assert events[0]["object"]["kind"] == "ConfigMap"
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert rvs == sorted(rvs)
    assert rvs[0] > int(since)


def test_watch_without_resource_version_starts_with_the_current_state(http: KubeHTTP) -> None:
    created(http.post(CONFIGMAPS, configmap("a")))
    started = time.monotonic()
    events = http.watch(CONFIGMAPS, timeout=1)
    assert 0.9 <= time.monotonic() - started < 5
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "a")]


def test_watch_streams_live_events_per_namespace(http: KubeHTTP) -> None:
    list_rv = http.get(CONFIGMAPS).json()["metadata"]["resourceVersion"]
    result: list[dict[str, Any]] = []
    thread = threading.Thread(target=lambda: result.extend(
        http.watch(CONFIGMAPS, timeout=2, resourceVersion=list_rv)))
    thread.start()
    time.sleep(0.3)
    created(http.post(CONFIGMAPS, configmap("live")))
    created(http.post("/api/v1/namespaces/other/configmaps", configmap("elsewhere")))
    http.delete(f"{CONFIGMAPS}/live")
    thread.join()
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in result] == [
        ("ADDED", "live"), ("DELETED", "live")]


def test_watch_with_label_selector_sees_objects_enter_and_leave(http: KubeHTTP) -> None:
    obj = created(http.post(CONFIGMAPS, configmap("a", labels={"on": "no"})))
    since = obj["metadata"]["resourceVersion"]
    http.patch(f"{CONFIGMAPS}/a", {"metadata": {"labels": {"on": "yes"}}})
    http.patch(f"{CONFIGMAPS}/a", {"data": {"k": "2"}})
    http.patch(f"{CONFIGMAPS}/a", {"metadata": {"labels": {"on": "no"}}})
    events = http.watch("/api/v1/configmaps", resourceVersion=since, labelSelector="on=yes")
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "DELETED"]


def test_watch_with_field_selector_and_of_one_object(http: KubeHTTP) -> None:
    first = created(http.post(CONFIGMAPS, configmap("a")))
    created(http.post(CONFIGMAPS, configmap("b")))
    http.patch(f"{CONFIGMAPS}/a", {"data": {"k": "2"}})
    http.patch(f"{CONFIGMAPS}/b", {"data": {"k": "2"}})
    since = first["metadata"]["resourceVersion"]
    events = http.watch("/api/v1/configmaps", resourceVersion=since,
                        fieldSelector="metadata.name=b")
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "b"), ("MODIFIED", "b")]
    single = http.watch(f"{CONFIGMAPS}/a", resourceVersion=since)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in single] == [("MODIFIED", "a")]


def test_watch_of_a_too_old_resource_version_is_gone(api: KubeAPI, http: KubeHTTP) -> None:
    async def shrink() -> None:
        api.store.history_limit = 2

    api.call(shrink())
    for index in range(5):
        created(http.post(CONFIGMAPS, configmap(f"c{index}")))
    events = http.watch(CONFIGMAPS, resourceVersion="1")
    assert events[0]["type"] == "ERROR"
    assert events[0]["object"]["code"] == 410


def test_watch_bookmarks_and_initial_events(http: KubeHTTP) -> None:
    created(http.post(CONFIGMAPS, configmap("a")))
    events = http.watch(CONFIGMAPS, sendInitialEvents="true", allowWatchBookmarks="true",
                        resourceVersionMatch="NotOlderThan")
    assert events[0]["type"] == "ADDED"
    assert events[1]["type"] == "BOOKMARK"
    assert events[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


# -- validation ----------------------------------------------------------------------------

def test_builtin_validation_reports_field_paths(http: KubeHTTP) -> None:
    bad = deployment()
    bad["spec"]["template"]["spec"]["containers"][0]["bogus"] = 1
    body = assert_status(http.post(DEPLOYMENTS, bad), 422, "Invalid")
    assert "spec.template.spec.containers[0].bogus" in body["message"]
    bad = deployment()
    bad["spec"]["replicas"] = "three"
    assert "spec.replicas" in assert_status(http.post(DEPLOYMENTS, bad), 422, "Invalid")["message"]
    bad = deployment()
    bad["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    message = assert_status(http.post(DEPLOYMENTS, bad), 422, "Invalid")["message"]
    assert "selector" in message
    bad = deployment()
    del bad["spec"]["template"]["spec"]["containers"][0]["image"]
    assert "image" in assert_status(http.post(DEPLOYMENTS, bad), 422, "Invalid")["message"]
    bad = configmap("Bad_Name")
    assert "metadata.name" in assert_status(http.post(CONFIGMAPS, bad), 422, "Invalid")["message"]
    bad = configmap("ok", labels={"x": "not a valid value"})
    assert "metadata.labels" in assert_status(http.post(CONFIGMAPS, bad), 422,
                                              "Invalid")["message"]


def test_resource_quantities_are_stored_canonically(http: KubeHTTP) -> None:
    body = deployment()
    body["spec"]["template"]["spec"]["containers"][0]["resources"] = {
        "requests": {"cpu": 0.5, "memory": "1024Mi"}, "limits": {"cpu": "1000m"}}
    obj = created(http.post(DEPLOYMENTS, body))
    resources = obj["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources == {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "1"}}


def test_builtin_immutable_fields(http: KubeHTTP) -> None:
    created(http.post(DEPLOYMENTS, deployment()))
    patch = {"spec": {"selector": {"matchLabels": {"app": "web", "more": "x"}},
                      "template": {"metadata": {"labels": {"more": "x"}}}}}
    assert "spec.selector" in assert_status(http.patch(f"{DEPLOYMENTS}/web", patch), 422,
                                            "Invalid")["message"]


def test_a_claims_volume_name_is_set_once(http: KubeHTTP) -> None:
    """The binder writes spec.volumeName of a new claim (a real server allows it while it is
    empty); the rest of the spec, and the volume name once set, stay immutable."""
    claims = "/api/v1/namespaces/shop/persistentvolumeclaims"
    created(http.post(claims, {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"],
                 "resources": {"requests": {"storage": "1Gi"}}}}))
    bound = http.patch(f"{claims}/data", {"spec": {"volumeName": "pv-1"}})
    assert bound.status_code == 200, bound.text
    assert bound.json()["spec"]["volumeName"] == "pv-1"
    for change in ({"volumeName": "pv-2"}, {"accessModes": ["ReadWriteMany"]}):
        assert "spec is immutable" in assert_status(
            http.patch(f"{claims}/data", {"spec": change}), 422, "Invalid")["message"]


def test_custom_resource_schema_validation(http: KubeHTTP) -> None:
    cases = {
        "spec.size": widget(size=11),
        "spec.mode": widget(mode="medium"),
        "spec.owner": widget(owner="Not Valid"),
    }
    for field, body in cases.items():
        message = assert_status(http.post(WIDGETS, body), 422, "Invalid")["message"]
        assert field in message, message
    missing = widget()
    del missing["spec"]["owner"]
    assert "spec.owner: Required value" in assert_status(http.post(WIDGETS, missing), 422,
                                                         "Invalid")["message"]
    wrong_type = widget()
    wrong_type["spec"]["tags"] = {"a": 1}
    assert "spec.tags.a" in assert_status(http.post(WIDGETS, wrong_type), 422,
                                          "Invalid")["message"]


def test_custom_resource_defaults_and_pruning(http: KubeHTTP) -> None:
    body = widget(unknown="x", extra={"anything": {"goes": 1}}, notes=None)
    response = http.post(WIDGETS, body)
    obj = created(response)
    assert obj["spec"] == {"owner": "bob", "size": 3, "mode": "fast", "limits": {"cpu": "1"},
                           "extra": {"anything": {"goes": 1}}, "notes": None}
    assert 'unknown field \\"spec.unknown\\"' in response.headers["Warning"]
    strict = http.post(WIDGETS, widget("w2", unknown="x"), fieldValidation="Strict")
    assert_status(strict, 400, "BadRequest")


def test_transition_rule_self_equals_old_self(http: KubeHTTP) -> None:
    created(http.post(WIDGETS, widget()))
    message = assert_status(http.patch(f"{WIDGETS}/w1", {"spec": {"owner": "alice"}}), 422,
                            "Invalid")["message"]
    assert "spec.owner" in message
    assert "owner is immutable" in message
    assert http.patch(f"{WIDGETS}/w1", {"spec": {"size": 4}}).status_code == 200


def test_dry_run_is_not_persisted(http: KubeHTTP) -> None:
    response = http.post(WIDGETS, widget(), dryRun="All")
    assert response.status_code == 201
    assert http.get(f"{WIDGETS}/w1").status_code == 404
    created(http.post(WIDGETS, widget()))
    http.patch(f"{WIDGETS}/w1", {"spec": {"size": 9}}, dryRun="All")
    assert http.get(f"{WIDGETS}/w1").json()["spec"]["size"] == 3
    http.delete(f"{WIDGETS}/w1", dryRun="All")
    assert http.get(f"{WIDGETS}/w1").status_code == 200


# -- discovery and CRDs --------------------------------------------------------------------

def test_discovery(http: KubeHTTP) -> None:
    assert http.get("/api").json()["versions"] == ["v1"]
    groups = {g["name"]: g for g in http.get("/apis").json()["groups"]}
    assert groups["apps"]["preferredVersion"]["version"] == "v1"
    assert "test.webordinary.dev" in groups
    group = http.get("/apis/test.webordinary.dev").json()
    assert group["kind"] == "APIGroup"
    resources = {r["name"]: r for r in http.get("/apis/test.webordinary.dev/v1").json()
                 ["resources"]}
    assert resources["widgets"]["kind"] == "Widget"
    assert resources["widgets"]["namespaced"] is True
    assert "watch" in resources["widgets"]["verbs"]
    assert resources["widgets"]["shortNames"] == ["wdg"]
    assert "widgets/status" in resources
    core = {r["name"] for r in http.get("/api/v1").json()["resources"]}
    assert {"pods", "configmaps", "namespaces", "services/status"} <= core
    assert http.get("/version").json()["gitVersion"].startswith("v1.")


def test_creating_a_crd_through_the_api_registers_its_resource(http: KubeHTTP) -> None:
    crd = yaml.safe_load((FIXTURES / "widgets.yaml").read_text())
    crd["metadata"]["name"] = "gadgets.test.webordinary.dev"
    crd["spec"]["names"] = {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"}
    path = "/apis/test.webordinary.dev/v1/namespaces/shop/gadgets"
    assert http.get(path).status_code == 404
    created(http.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd))
    body = widget("g1")
    body["kind"] = "Gadget"
    created(http.post(path, body))
    kinds = {r["kind"] for r in http.get("/apis/test.webordinary.dev/v1").json()["resources"]}
    assert "Gadget" in kinds
    http.delete("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
                "gadgets.test.webordinary.dev")
    assert http.get(path).status_code == 404
    created(http.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd))
    assert http.get(path).json()["items"] == []


def test_an_invalid_crd_is_refused(http: KubeHTTP) -> None:
    crd = yaml.safe_load((FIXTURES / "widgets.yaml").read_text())
    crd["metadata"]["name"] = "wrong.name"
    assert_status(http.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd),
                  422, "Invalid")


def test_table_output_for_kubectl(http: KubeHTTP) -> None:
    created(http.post(WIDGETS, widget()))
    http.patch(f"{WIDGETS}/w1/status", {"status": {"phase": "Ready"}})
    accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    table = http.session.get(http.url + WIDGETS, headers={"Accept": accept}).json()
    assert table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Phase", "Age"]
    assert table["rows"][0]["cells"][:2] == ["w1", "Ready"]


# -- counters ------------------------------------------------------------------------------

def test_request_counters(api: KubeAPI, http: KubeHTTP) -> None:
    api.reset_counts()
    created(http.post(WIDGETS, widget()))
    http.patch(f"{WIDGETS}/w1/status", {"status": {"phase": "x"}})
    http.get(f"{WIDGETS}/w1")
    http.get(WIDGETS)
    http.delete(f"{WIDGETS}/w1")
    counts = api.request_counts()
    assert counts == {"GET": 1, "LIST": 1, "POST": 1, "PUT": 0, "PATCH": 1, "DELETE": 1,
                      "WATCH": 0}
    assert api.write_counts() == {"widgets": 2, "widgets/status": 1}
    assert api.read_counts() == {"GET widgets": 1, "LIST widgets": 1}
    assert set(api.timings()) >= {"POST", "PATCH", "GET", "LIST", "DELETE"}


def test_request_trace(api: KubeAPI, http: KubeHTTP) -> None:
    assert api.trace(True) == []
    before = time.time()
    created(http.post(WIDGETS, widget()))
    http.patch(f"{WIDGETS}/w1", {"metadata": {"labels": {"a": "b"}}})
    traced = api.trace(False)
    assert [(verb, path) for _, _, verb, path in traced] == [
        ("POST", WIDGETS), ("PATCH", f"{WIDGETS}/w1")]
    assert all(before <= start <= end <= time.time() for start, end, _, _ in traced)
    http.get(f"{WIDGETS}/w1")
    assert api.trace(False) == []  # off


def test_repo_crds_are_registered_when_present(http: KubeHTTP) -> None:
    if not list(REPO_CRDS.glob("*.yaml")):
        pytest.skip("no CRDs in the repo yet")
    crds = names(http.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions"))
    assert "editenvironments.webordinary.dev" in crds


def test_edit_environment_crd_defaults_and_immutable_ids(http: KubeHTTP) -> None:
    if not (REPO_CRDS / "editenvironments.webordinary.dev.yaml").exists():
        pytest.skip("the EditEnvironment CRD is not in the repo yet")
    path = "/apis/webordinary.dev/v1alpha1/namespaces/webordinary/editenvironments"
    body = {"apiVersion": "webordinary.dev/v1alpha1", "kind": "EditEnvironment",
            "metadata": {"name": "amelia-site-john"},
            "spec": {"clientId": "amelia", "projectId": "site", "userId": "john",
                     "repository": {"url": "https://example.com/site.git"}}}
    obj = created(http.post(path, body))
    assert obj["spec"]["repository"]["branch"] == "main"
    assert obj["spec"]["sessions"] == []
    changed = http.patch(f"{path}/amelia-site-john", {"spec": {"clientId": "eve"}})
    assert "clientId is immutable" in assert_status(changed, 422, "Invalid")["message"]
    bad = dict(body, metadata={"name": "x"}, spec=dict(body["spec"], clientId="has space"))
    assert "spec.clientId" in assert_status(http.post(path, bad), 422, "Invalid")["message"]


def test_start_without_crds_folder(tmp_path: Path) -> None:
    api = start_kube_api([tmp_path / "missing", tmp_path])
    try:
        assert KubeHTTP(api.url).get("/api/v1/namespaces").status_code == 200
    finally:
        api.stop()


def test_stop_ends_open_watches_promptly() -> None:
    api = start_kube_api([FIXTURES])
    http = KubeHTTP(api.url)
    ended = threading.Event()

    def watch() -> None:
        with contextlib.suppress(Exception):  # the connection may also just close
            http.watch(CONFIGMAPS, timeout=600)
        ended.set()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    time.sleep(0.3)
    started = time.monotonic()
    api.stop()
    assert time.monotonic() - started < 5
    assert ended.wait(5)
