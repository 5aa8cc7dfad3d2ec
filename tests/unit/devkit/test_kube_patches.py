"""JSON patch, merge patch and strategic merge patch of the Kubernetes API emulator."""

from __future__ import annotations

from typing import Any

import pytest

from webordinary.devkit.kube.errors import ApiError
from webordinary.devkit.kube.patches import apply_json_patch, apply_merge_patch, strategic_merge
from webordinary.devkit.kube.validation import builtin_patch_meta

DOC: dict[str, Any] = {
    "metadata": {"name": "x", "resourceVersion": "5", "finalizers": ["a/b"]},
    "spec": {"items": [1, 2, 3], "nested": {"a": 1}},
}


def test_json_patch_operations() -> None:
    patched = apply_json_patch(DOC, [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "5"},
        {"op": "add", "path": "/spec/items/-", "value": 4},
        {"op": "add", "path": "/spec/items/0", "value": 0},
        {"op": "remove", "path": "/spec/items/1"},
        {"op": "replace", "path": "/spec/nested/a", "value": 2},
        {"op": "copy", "from": "/spec/nested", "path": "/spec/copied"},
        {"op": "move", "from": "/spec/copied", "path": "/spec/moved"},
        {"op": "add", "path": "/metadata/annotations", "value": {"a~b/c": "1"}},
        {"op": "remove", "path": "/metadata/annotations/a~0b~1c"},
    ])
    assert patched["spec"] == {"items": [0, 2, 3, 4], "nested": {"a": 2}, "moved": {"a": 2}}
    assert patched["metadata"]["annotations"] == {}
    assert DOC["spec"]["items"] == [1, 2, 3]


@pytest.mark.parametrize("ops", [
    [{"op": "test", "path": "/metadata/resourceVersion", "value": "6"}],
    [{"op": "test", "path": "/spec/items/0", "value": True}],
    [{"op": "replace", "path": "/spec/missing", "value": 1}],
    [{"op": "remove", "path": "/spec/items/9"}],
    [{"op": "add", "path": "/nope/deeper", "value": 1}],
])
def test_json_patch_failures_are_422(ops: list[dict[str, Any]]) -> None:
    with pytest.raises(ApiError) as error:
        apply_json_patch(DOC, ops)
    assert error.value.code == 422


@pytest.mark.parametrize("ops", [{"op": "add"}, [{"op": "jump", "path": "/a"}], [{"path": "/a"}]])
def test_malformed_json_patch_is_400(ops: Any) -> None:
    with pytest.raises(ApiError) as error:
        apply_json_patch(DOC, ops)
    assert error.value.code == 400


def test_merge_patch() -> None:
    patched = apply_merge_patch(DOC, {"spec": {"items": [9], "nested": None, "new": {"b": 1}}})
    assert patched["spec"] == {"items": [9], "new": {"b": 1}}
    assert patched["metadata"] == DOC["metadata"]


def test_strategic_merge_by_keys_and_directives() -> None:
    live = {
        "metadata": {"finalizers": ["a/b"], "ownerReferences": [{"uid": "1", "name": "o"}]},
        "spec": {"containers": [
            {"name": "main", "image": "a:1", "ports": [{"containerPort": 80}],
             "volumeMounts": [{"name": "v", "mountPath": "/data"}],
             "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
            {"name": "side", "image": "s:1"}],
            "tolerations": [{"key": "x"}]},
    }
    patch = {
        "metadata": {"finalizers": ["c/d"], "ownerReferences": [{"uid": "2", "name": "p"}]},
        "spec": {
            "containers": [
                {"name": "main", "ports": [{"containerPort": 81}],
                 "volumeMounts": [{"name": "w", "mountPath": "/data"}],
                 "env": [{"name": "A", "$patch": "delete"}, {"name": "C", "value": "3"}]},
                {"name": "side", "$patch": "delete"}],
            "tolerations": [{"key": "y"}],
            "$setElementOrder/containers": [{"name": "main"}],
        },
    }
    merged = strategic_merge(live, patch)
    assert merged["metadata"]["finalizers"] == ["a/b", "c/d"]
    assert [r["uid"] for r in merged["metadata"]["ownerReferences"]] == ["1", "2"]
    (main,) = merged["spec"]["containers"]
    assert main["image"] == "a:1"
    assert main["ports"] == [{"containerPort": 80}, {"containerPort": 81}]
    assert main["volumeMounts"] == [{"name": "w", "mountPath": "/data"}]
    assert main["env"] == [{"name": "B", "value": "2"}, {"name": "C", "value": "3"}]
    assert merged["spec"]["tolerations"] == [{"key": "y"}]
    removed = strategic_merge(merged, {"metadata": {"$deleteFromPrimitiveList/finalizers":
                                                    ["a/b"]}})
    assert removed["metadata"]["finalizers"] == ["c/d"]
    replaced = strategic_merge(merged, {"spec": {"$patch": "replace", "only": 1}})
    assert replaced["spec"] == {"only": 1}


def test_strategic_merge_reads_strategies_from_the_builtin_schema() -> None:
    policy = builtin_patch_meta("networking.k8s.io/v1", "NetworkPolicy")
    live = {"spec": {"ingress": [{"ports": [{"port": 80}]}]}}
    patched = strategic_merge(live, {"spec": {"ingress": [{"ports": [{"port": 81}]}]}}, policy)
    assert patched["spec"]["ingress"] == [{"ports": [{"port": 81}]}]

    service = builtin_patch_meta("v1", "Service")
    live = {"spec": {"ports": [{"port": 80, "name": "http"}]}}
    patched = strategic_merge(live, {"spec": {"ports": [{"port": 443, "name": "https"}]}},
                              service)
    assert [p["port"] for p in patched["spec"]["ports"]] == [80, 443]

    account = builtin_patch_meta("v1", "ServiceAccount")
    live = {"secrets": [{"name": "a"}], "metadata": {"finalizers": ["x/y"]}}
    patch = {"secrets": [{"name": "b"}], "metadata": {"finalizers": ["z/w"]}}
    patched = strategic_merge(live, patch, account)
    assert patched["secrets"] == [{"name": "a"}, {"name": "b"}]
    assert patched["metadata"]["finalizers"] == ["x/y", "z/w"]

    deployment = builtin_patch_meta("apps/v1", "Deployment")
    live = {"spec": {"template": {"spec": {"containers": [
        {"name": "a", "image": "a:1", "args": ["x"], "ports": [{"containerPort": 1}]}]}}}}
    patch = {"spec": {"template": {"spec": {"containers": [
        {"name": "a", "args": ["y"], "ports": [{"containerPort": 2}]}]}}}}
    (container,) = strategic_merge(live, patch, deployment)["spec"]["template"]["spec"][
        "containers"]
    assert container == {"name": "a", "image": "a:1", "args": ["y"],
                         "ports": [{"containerPort": 1}, {"containerPort": 2}]}
