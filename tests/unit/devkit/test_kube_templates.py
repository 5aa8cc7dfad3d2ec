"""Settled pod templates (devkit kube/templates.py): a workload's writes that send its template
back unchanged store what processing it in full would store, and a template that differs in
any way, a type included, is processed and checked again (no HTTP: the emulator's Store)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from webordinary.devkit.kube.errors import ApiError
from webordinary.devkit.kube.store import Store

MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"


def deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}}, "template": {
            "metadata": {"labels": {"app": "web"}, "annotations": {}},
            "spec": {
                "containers": [{
                    "name": "main", "image": "nginx:1", "args": [],
                    "env": [{"name": "EMPTY", "value": ""}, {"name": "A", "value": "1"}],
                    "ports": [{"containerPort": 80}],
                    "resources": {"requests": {"cpu": "0.5", "memory": "1024Mi"}},
                    "readinessProbe": {"httpGet": {"path": "/", "port": 80}},
                    "volumeMounts": [{"name": "work", "mountPath": "/work"}]}],
                "volumes": [{"name": "work", "emptyDir": {}}],
                "securityContext": {"runAsUser": 1000}}}},
    }


WRITES: list[tuple[str, Any]] = [
    (MERGE, {"spec": {"replicas": 1}}),
    (MERGE, {"metadata": {"labels": {"x": "y"}}}),
    (STRATEGIC, {"spec": {"replicas": 0}}),
    (MERGE, {"spec": {"template": {"metadata": {"labels": {"app": "web", "v": "2"}}}}}),
    (MERGE, {"spec": {"replicas": 1}}),
    (MERGE, {"spec": {"template": {"spec": {"containers": [{
        "name": "main", "image": "nginx:2", "resources": {"limits": {"cpu": "1000m"}}}]}}}}),
    (MERGE, {"spec": {"replicas": 0}}),
]


def run(writes: list[tuple[str, Any]], settle: bool) -> list[str]:
    """Each write's stored object, as JSON (without the uid and times)."""
    store = Store()
    resource = store.find("apps", "v1", "deployments")
    assert resource is not None
    store.create(resource, "default", deployment())
    stored = []
    for content_type, patch in writes:
        if not settle:
            store.templates.forget((resource.storage_key, ("default", "web")))
        obj, _ = store.patch(resource, "default", "web", content_type, patch)
        meta = {k: v for k, v in obj["metadata"].items()
                if k not in ("uid", "creationTimestamp")}
        stored.append(json.dumps({**obj, "metadata": meta}))
    return stored


def test_writes_store_what_processing_the_template_in_full_stores() -> None:
    assert run(WRITES, settle=True) == run(WRITES, settle=False)


def test_the_settled_template_is_the_processed_one() -> None:
    container = json.loads(run(WRITES[:1], settle=True)[0])["spec"]["template"]["spec"][
        "containers"][0]
    assert container["resources"]["requests"] == {"cpu": "500m", "memory": "1Gi"}
    assert container["env"] == [{"name": "EMPTY"}, {"name": "A", "value": "1"}]
    assert "args" not in container
    assert container["terminationMessagePolicy"] == "File"


@pytest.mark.parametrize(("change", "field"), [
    # equal to the stored value under Python's ==, but not the same JSON type
    (lambda spec: spec["securityContext"].update(runAsUser=1000.0),
     "spec.template.spec.securityContext.runAsUser"),
    (lambda spec: spec["containers"][0].update(tty=1), "spec.template.spec.containers[0].tty"),
    (lambda spec: spec["containers"][0].update(name="Main"),
     "spec.template.spec.containers[0].name"),
    (lambda spec: spec["containers"][0]["volumeMounts"][0].update(name="gone"),
     "spec.template.spec.containers[0].volumeMounts[0].name"),
])
def test_a_template_that_differs_in_any_way_is_checked_again(change: Any, field: str) -> None:
    store = Store()
    resource = store.find("apps", "v1", "deployments")
    assert resource is not None
    store.create(resource, "default", deployment())
    store.patch(resource, "default", "web", MERGE, {"spec": {"replicas": 1}})
    current = copy.deepcopy(store.get(resource, "default", "web"))
    if field.endswith(".tty"):  # a boolean the stored template has
        current["spec"]["template"]["spec"]["containers"][0]["tty"] = True
        store.update(resource, "default", "web", copy.deepcopy(current))
        current = copy.deepcopy(store.get(resource, "default", "web"))
    change(current["spec"]["template"]["spec"])
    with pytest.raises(ApiError) as refused:
        store.update(resource, "default", "web", current)
    assert refused.value.code == 422
    assert field in json.dumps(refused.value.status())


def test_stored_versions_are_not_changed_by_later_writes() -> None:
    store = Store()
    resource = store.find("apps", "v1", "deployments")
    assert resource is not None
    first, _ = store.create(resource, "default", deployment())
    before = json.dumps(first)
    versions = [first]
    for content_type, patch in WRITES:
        obj, _ = store.patch(resource, "default", "web", content_type, patch)
        versions.append(obj)
    assert json.dumps(first) == before
    assert len({v["metadata"]["resourceVersion"] for v in versions}) == len(versions)


def test_a_recreated_workload_starts_afresh() -> None:
    store = Store()
    resource = store.find("apps", "v1", "deployments")
    assert resource is not None
    store.create(resource, "default", deployment())
    store.delete(resource, "default", "web")
    broken = deployment()
    broken["spec"]["template"]["spec"]["containers"][0]["image"] = ""
    with pytest.raises(ApiError) as refused:
        store.create(resource, "default", broken)
    assert "spec.template.spec.containers[0].image" in json.dumps(refused.value.status())
