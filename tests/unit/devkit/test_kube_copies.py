"""What a write copies (devkit kube/store.py `Shares`): a decoded request body is used as it
is, a patch's result shares its unchanged parts with the stored object, a caller's body is
copied. Whatever is shared, no stored version and no caller's object ever changes afterwards
(no HTTP: the emulator's Store)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from webordinary.devkit.kube.store import Obj, Store
from webordinary.devkit.kubeapi import crd_documents

ROOT = Path(__file__).resolve().parents[3]
MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"


def deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "annotations": {"a": "1"}},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}}, "template": {
            "metadata": {"labels": {"app": "web"}, "annotations": {}},
            "spec": {"containers": [{
                "name": "main", "image": "nginx:1", "args": [],
                "env": [{"name": "EMPTY", "value": ""}],
                "resources": {"requests": {"cpu": "0.5", "memory": "1024Mi"}},
                "ports": [{"containerPort": 80}]}]}}},
    }


def environment() -> dict[str, Any]:
    return {
        "apiVersion": "webordinary.dev/v1alpha1", "kind": "EditEnvironment",
        "metadata": {"name": "env", "namespace": "default", "annotations": {"a": "1"}},
        "spec": {"clientId": "c", "projectId": "p", "userId": "u",
                 "repository": {"url": "https://example.com/site.git"},
                 "sessions": ["t1"], "idleTimeout": "24h"},
    }


# (content type, patch, subresource) for each kind: every shape of write a patch makes
BUILTIN_WRITES: list[tuple[str, Any, str | None]] = [
    (MERGE, {"spec": {"replicas": 1}}, None),
    (STRATEGIC, {"metadata": {"annotations": {"b": "2"}}}, None),
    (MERGE, {"spec": {"template": {"spec": {"containers": [{
        "name": "main", "image": "nginx:2", "args": [], "env": [{"name": "E", "value": ""}],
        "resources": {"limits": {"cpu": "1000m"}}}]}}}}, None),
    (MERGE, {"status": {"replicas": 1, "conditions": [{"type": "Available", "status": "True",
                                                       "reason": "", "message": ""}]}},
     "status"),
    (JSON_PATCH, [{"op": "add", "path": "/metadata/labels", "value": {"x": "y"}}], None),
    (STRATEGIC, {"status": {"readyReplicas": 1}}, "status"),
    (MERGE, {"spec": {"replicas": 0}}, None),
]
CUSTOM_WRITES: list[tuple[str, Any, str | None]] = [
    (JSON_PATCH, [{"op": "add", "path": "/metadata/finalizers", "value": ["x/y"]}], None),
    (MERGE, {"status": {"phase": "Starting", "conditions": [
        {"type": "Ready", "status": "False", "reason": "Binding", "message": "m",
         "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}, "status"),
    (MERGE, {"metadata": {"annotations": {"b": "2"}}}, None),
    (MERGE, {"spec": {"sessions": ["t1", "t2"], "suspend": None}}, None),
    (MERGE, {"status": {"phase": "Ready"}}, "status"),
    (MERGE, {"spec": {"editor": {"env": [{"name": "A", "value": "1"}]}}}, None),
]


def store_with_crds() -> Store:
    store = Store()
    crds = store.find("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    assert crds is not None
    for doc in crd_documents([ROOT / "crds"]):
        store.create(crds, None, doc)
    return store


@pytest.mark.parametrize(("group", "plural", "body", "writes"), [
    ("apps", "deployments", deployment, BUILTIN_WRITES),
    ("webordinary.dev", "editenvironments", environment, CUSTOM_WRITES),
], ids=["builtin", "custom"])
def test_patches_leave_every_stored_version_as_it_was(
        group: str, plural: str, body: Any, writes: list[tuple[str, Any, str | None]]) -> None:
    store = store_with_crds()
    resource = next(r for r in store.resources.values()
                    if r.group == group and r.plural == plural)
    created, _ = store.create(resource, "default", body(), shares="nothing")
    versions: list[tuple[Obj, str]] = [(created, json.dumps(created, sort_keys=True))]
    for content_type, patch, subresource in writes:
        sent = copy.deepcopy(patch)
        new, _ = store.patch(resource, "default", body()["metadata"]["name"], content_type,
                             patch, subresource=subresource)
        assert patch == sent  # the patch itself is left alone
        versions.append((new, json.dumps(new, sort_keys=True)))
    assert len({text for _, text in versions}) == len(versions)  # each write changed it
    for obj, text in versions:  # the objects of earlier versions (in watch history) too
        assert json.dumps(obj, sort_keys=True) == text
    events = [event.obj for event in store.history[resource.storage_key]]
    assert [json.dumps(e, sort_keys=True) for e in events] == [t for _, t in versions]


def test_a_callers_body_is_copied() -> None:
    store = store_with_crds()
    for group, plural, make in (("apps", "deployments", deployment),
                                ("webordinary.dev", "editenvironments", environment)):
        resource = next(r for r in store.resources.values()
                        if r.group == group and r.plural == plural)
        body = make()
        created, _ = store.create(resource, "default", body)
        stored = json.dumps(created, sort_keys=True)
        body["metadata"]["annotations"]["a"] = "changed"
        body["spec"]["changed"] = {"x": 1}
        assert json.dumps(store.get(resource, "default", body["metadata"]["name"]),
                          sort_keys=True) == stored
        update = copy.deepcopy(created)
        update["metadata"]["annotations"]["c"] = "3"
        updated, _ = store.update(resource, "default", body["metadata"]["name"], update)
        after = json.dumps(updated, sort_keys=True)
        update["metadata"]["annotations"]["c"] = "changed"
        update["spec"]["changed"] = [1]
        assert json.dumps(store.get(resource, "default", body["metadata"]["name"]),
                          sort_keys=True) == after
        status = {**copy.deepcopy(updated), "status": {"phase": "Ready"} if resource.custom
                  else {"replicas": 1, "conditions": [{"type": "Available", "status": "True",
                                                       "reason": "R"}]}}
        reported, _ = store.update(resource, "default", body["metadata"]["name"], status,
                                   subresource="status")
        after = json.dumps(reported, sort_keys=True)
        status["status"]["extra"] = {"changed": True}
        if not resource.custom:
            status["status"]["conditions"][0]["reason"] = "changed"
        assert json.dumps(store.get(resource, "default", body["metadata"]["name"]),
                          sort_keys=True) == after
