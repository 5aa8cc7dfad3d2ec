"""Empty optional fields of built-ins dropped as Go's `omitempty` drops them (devkit
kube/omitempty.py): which empties go and which stay, by the field's schema (no HTTP)."""

from __future__ import annotations

import copy
from typing import Any

from webordinary.devkit.kube.omitempty import Pruner, drop_empty_builtin


def test_a_pod_template_loses_exactly_its_empty_optional_fields() -> None:
    deployment: dict[str, Any] = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {}, "annotations": {"a": ""}, "finalizers": []},
        "spec": {"replicas": 0, "paused": False, "selector": {"matchLabels": {}},
                 "template": {"metadata": {"labels": {"app": "web"}, "annotations": {}},
                              "spec": {
            "nodeSelector": {}, "tolerations": [], "hostname": "", "affinity": None,
            "securityContext": {}, "volumes": [{"name": "w", "emptyDir": {}}],
            "containers": [{
                "name": "", "image": "nginx:1", "args": [], "workingDir": "",
                "env": [{"name": "E", "value": ""}, {"name": "F", "valueFrom": None}],
                "ports": [{"containerPort": 80, "name": "", "hostIP": ""}],
                "resources": {"limits": {"cpu": ""}, "requests": {}},
                "readinessProbe": {"httpGet": {"path": "", "port": ""}}}]}}},
        "status": {"conditions": [], "replicas": 0},
    }
    drop_empty_builtin("apps/v1", "Deployment", deployment)
    assert deployment["metadata"] == {"name": "web", "annotations": {"a": ""}}
    spec = deployment["spec"]
    assert spec["replicas"] == 0  # zeros and false stay
    assert spec["paused"] is False
    assert spec["selector"] == {}  # an empty map of a struct: dropped; the struct stays
    assert "annotations" not in spec["template"]["metadata"]
    pod = spec["template"]["spec"]
    assert pod == {
        "securityContext": {}, "volumes": [{"name": "w", "emptyDir": {}}],
        "containers": [{
            "name": "", "image": "nginx:1",  # a required string stays even when empty
            "env": [{"name": "E"}, {"name": "F"}],
            "ports": [{"containerPort": 80}],
            "resources": {"limits": {"cpu": ""}},  # a quantity (int-or-string) stays
            "readinessProbe": {"httpGet": {"port": ""}}}]}  # int-or-string port stays
    assert deployment["status"] == {"replicas": 0}


def test_a_part_already_pruned_is_left_alone() -> None:
    deployment: dict[str, Any] = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"template": {"metadata": {"annotations": {}}, "spec": {"containers": []}},
                 "selector": {"matchLabels": {}}},
    }
    template = deployment["spec"]["template"]
    drop_empty_builtin("apps/v1", "Deployment", deployment, keep=template)
    assert deployment["spec"]["template"] is template
    assert template == {"metadata": {"annotations": {}}, "spec": {"containers": []}}
    assert deployment["spec"]["selector"] == {}


def test_each_schema_is_pruned_by_its_own_rules() -> None:
    """Plans are kept per schema object: two schemas with the same shape of field but other
    types never share one."""
    definitions = {
        "A": {"type": "object", "properties": {"x": {"type": "string"}}},
        "B": {"type": "object", "properties": {"x": {"type": "integer"}}},
        "M": {"type": "object", "additionalProperties": {"$ref": "#/$defs/A"}},
    }
    pruner = Pruner(definitions)
    a, b = {"x": ""}, {"x": ""}
    pruner.prune(a, {"$ref": "#/$defs/A"})
    pruner.prune(b, {"$ref": "#/$defs/B"})
    assert a == {}
    assert b == {"x": ""}
    values = {"one": {"x": ""}, "two": {"x": "y"}}
    pruner.prune(values, {"$ref": "#/$defs/M"})
    assert values == {"one": {}, "two": {"x": "y"}}
    again = copy.deepcopy(values)
    pruner.prune(again, {"$ref": "#/$defs/M"})
    assert again == values  # pruning twice changes nothing
