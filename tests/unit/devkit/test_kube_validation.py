"""Schema checks and validation rules of the Kubernetes API emulator (no HTTP)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from webordinary.devkit.kube.resources import BUILTINS, Resource
from webordinary.devkit.kube.schemacheck import Cause, Compiler
from webordinary.devkit.kube.validation import CustomSchema, validate_builtin


def builtin(plural: str, group: str = "") -> Resource:
    return next(r for r in BUILTINS if r.plural == plural and r.group == group)


def deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "ns", "labels": {"a": "b"}},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{
                "name": "main", "image": "nginx:1", "ports": [{"containerPort": 80}],
                "resources": {"requests": {"cpu": "250m"}, "limits": {"cpu": 1}}}]}}},
    }


def causes_of(doc: dict[str, Any]) -> list[Cause]:
    return validate_builtin(builtin("deployments", "apps"), doc)


def test_a_valid_deployment_passes_quickly() -> None:
    doc = deployment()
    assert causes_of(doc) == []
    started = time.perf_counter()
    for _ in range(50):
        causes_of(doc)
    assert (time.perf_counter() - started) / 50 < 0.02


@pytest.mark.parametrize(("change", "field", "text"), [
    (lambda d: d["spec"].update(replicas="3"), "spec.replicas", "must be of type integer"),
    (lambda d: d["spec"]["template"]["spec"]["containers"][0].update(bogus=1),
     "spec.template.spec.containers[0].bogus", "unknown field"),
    (lambda d: d["spec"]["template"]["spec"]["containers"][0].pop("name"),
     "spec.template.spec.containers[0].name", "Required value"),
    (lambda d: d["spec"]["template"]["spec"]["containers"][0]["ports"][0].update(
        protocol="HTTP"), "spec.template.spec.containers[0].ports[0].protocol",
     "Unsupported value"),
    (lambda d: d["metadata"].update(name="Web"), "metadata.name", "RFC 1123"),
    (lambda d: d["metadata"]["labels"].update(a="-bad"), "metadata.labels", "valid label"),
    (lambda d: d["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"].update(
        cpu="2"), "spec.template.spec.containers[0].resources.requests", "cpu limit"),
    (lambda d: d["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"].update(
        memory="lots"), "spec.template.spec.containers[0].resources.requests[memory]",
     "quantities"),
    (lambda d: d["spec"]["template"]["spec"]["containers"][0].update(
        volumeMounts=[{"name": "nope", "mountPath": "/x"}]),
     "spec.template.spec.containers[0].volumeMounts[0].name", "Not found"),
])
def test_invalid_deployments(change: Any, field: str, text: str) -> None:
    doc = deployment()
    change(doc)
    causes = causes_of(doc)
    assert any(f == field and text in message for f, message in causes), causes


SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object", "required": ["id"],
            "properties": {
                "id": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 5,
                       "x-kubernetes-validations": [{"rule": "self == oldSelf",
                                                     "message": "id is immutable"}]},
                "count": {"type": "integer", "minimum": 1, "maximum": 3, "default": 2},
                "port": {"x-kubernetes-int-or-string": True},
                "maybe": {"type": "string", "nullable": True},
                "items": {"type": "array", "items": {"type": "string"}, "maxItems": 2,
                          "x-kubernetes-list-type": "set"},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "map": {"type": "object", "additionalProperties": {"type": "integer"}},
                "nested": {"type": "object", "default": {},
                           "properties": {"deep": {"type": "boolean", "default": True}}},
                "exclusive": {"type": "number", "maximum": 1, "exclusiveMaximum": True},
                "oneof": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
                "conditions": {"type": "array", "x-kubernetes-list-type": "map",
                               "x-kubernetes-list-map-keys": ["type"],
                               "items": {"type": "object",
                                         "properties": {"type": {"type": "string"}}}},
            },
        },
        "status": {"type": "object", "properties": {"phase": {"type": "string",
                                                              "enum": ["A", "B"]}}},
    },
}


def custom(spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "x.dev/v1", "kind": "X", "metadata": {"name": "x"}, "spec": spec}


def test_defaults_and_pruning() -> None:
    schema = CustomSchema(SCHEMA)
    body = custom({"id": "abc", "junk": 1, "maybe": None, "count": None,
                   "free": {"any": {"thing": 1}}})
    body["metadata"]["bogus"] = 1
    obj, pruned = schema.normalise(body)
    assert obj["metadata"] == {"name": "x"}
    assert obj["spec"] == {"id": "abc", "maybe": None, "count": 2, "free": {"any": {"thing": 1}},
                           "nested": {"deep": True}}
    assert pruned == ["metadata.bogus", "spec.junk"]
    assert schema.causes(obj, None) == []


@pytest.mark.parametrize(("spec", "field", "text"), [
    ({"id": "ABC"}, "spec.id", "should match"),
    ({"id": "abcdefg"}, "spec.id", "Too long"),
    ({}, "spec.id", "Required value"),
    ({"id": "a", "count": 4}, "spec.count", "less than or equal to 3"),
    ({"id": "a", "count": 0}, "spec.count", "greater than or equal to 1"),
    ({"id": "a", "count": "2"}, "spec.count", "must be of type integer"),
    ({"id": "a", "count": True}, "spec.count", "must be of type integer"),
    ({"id": "a", "port": 1.5}, "spec.port", "must be of type integer or string"),
    ({"id": "a", "items": ["a", "b", "c"]}, "spec.items", "Too many"),
    ({"id": "a", "items": ["a", "a"]}, "spec.items[1]", "Duplicate value"),
    ({"id": "a", "map": {"k": "v"}}, "spec.map.k", "must be of type integer"),
    ({"id": "a", "exclusive": 1}, "spec.exclusive", "less than 1"),
    ({"id": "a", "oneof": []}, "spec.oneof", "must be of type"),
    ({"id": "a", "conditions": [{"type": "R"}, {"type": "R"}]}, "spec.conditions[1]",
     "Duplicate value"),
])
def test_custom_schema_violations(spec: dict[str, Any], field: str, text: str) -> None:
    schema = CustomSchema(SCHEMA)
    obj, _ = schema.normalise(custom(spec))
    causes = schema.causes(obj, None)
    assert any(f == field and text in message for f, message in causes), causes


def test_transition_rule_only_on_update() -> None:
    schema = CustomSchema(SCHEMA)
    old, _ = schema.normalise(custom({"id": "abc"}))
    new, _ = schema.normalise(custom({"id": "xyz"}))
    assert schema.causes(new, None) == []
    assert schema.causes(new, old) == [("spec.id", 'Invalid value: "string": id is immutable')]
    assert schema.causes(old, old) == []


def test_status_enum() -> None:
    schema = CustomSchema(SCHEMA)
    obj = custom({"id": "a"})
    obj["status"] = {"phase": "C"}
    causes = schema.causes(obj, None)
    assert causes == [("status.phase", 'Unsupported value: "C": supported values: "A", "B"')]


def test_recursive_references_compile() -> None:
    definitions = {"Node": {"type": "object", "properties": {
        "child": {"$ref": "#/$defs/Node"}, "value": {"type": "integer"}}}}
    check = Compiler(definitions).ref("Node")
    out: list[Cause] = []
    check({"child": {"child": {"value": "x"}}}, (), out)
    assert out == [("child.child.value", 'Invalid value: "x": must be of type integer')]


def test_secret_data_must_be_base64() -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
              "data": {"ok": "c2stdGVzdA==", "bad": "not base64!"}}
    assert validate_builtin(builtin("secrets"), secret) == [
        ("data[bad]", "Invalid value: illegal base64 data")]


def test_compiling_from_several_threads_at_once() -> None:
    import json
    import threading
    from importlib import resources

    base = resources.files("kubernetes_validate").joinpath(
        "kubernetes-json-schema/v1.33.0-local-strict")
    definitions = json.loads(base.joinpath("_definitions.json").read_text())["$defs"]
    schema = json.loads(base.joinpath("deployment-apps-v1.json").read_text())
    compiler = Compiler(definitions)
    results: list[list[Cause]] = []
    failures: list[BaseException] = []

    def run() -> None:
        try:
            out: list[Cause] = []
            compiler.compile(schema)(deployment(), (), out)
            results.append(out)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert results == [[], [], [], []]


def test_list_map_keys_are_duplicates_exactly_when_their_json_is() -> None:
    schema = {"type": "array", "x-kubernetes-list-type": "map",
              "x-kubernetes-list-map-keys": ["k", "p"], "items": {"type": "object"}}
    items = [{"k": 1, "p": "TCP"}, {"k": True, "p": "TCP"}, {"k": "1", "p": "TCP"},
             {"k": 1.0, "p": "TCP"}, {"k": None, "p": "TCP"}, {"p": "TCP"},
             {"k": {"a": 1}, "p": "TCP"}, {"k": {"a": 1}, "p": "TCP"}, {"k": [1], "p": "TCP"},
             {"k": 1, "p": "UDP"}, {"k": 1, "p": "TCP"}, {"k": 1.0, "p": "TCP"}]
    out: list[Cause] = []
    Compiler(crd=True).compile(schema)(items, ("spec", "ports"), out)
    assert out == [
        ("spec.ports[5]", 'Duplicate value: map[k=null, p="TCP"]'),
        ("spec.ports[7]", 'Duplicate value: map[k={"a": 1}, p="TCP"]'),
        ("spec.ports[10]", 'Duplicate value: map[k=1, p="TCP"]'),
        ("spec.ports[11]", 'Duplicate value: map[k=1.0, p="TCP"]'),
    ]


@pytest.mark.parametrize("keyword", ["oneOf", "anyOf", "allOf"])
def test_combinators_of_type_only_branches_report_as_the_full_evaluation(keyword: str) -> None:
    """Branches that only check a type are asked whether they pass before any cause is
    built; the answer and the causes are those of evaluating every branch in full (a branch
    with more than a type check, here `minLength`, always runs in full)."""
    quick = {keyword: [{"type": "string"}, {"type": "integer"}, {}]}
    full = {keyword: [{"type": "string", "minLength": 0}, {"type": "integer"}, {}]}
    for value in ("a", 1, 1.5, True, None, [], {}):
        results = []
        for schema in (quick, full):
            out: list[Cause] = []
            Compiler().compile(schema)(value, ("spec", "port"), out)
            results.append(out)
        assert results[0] == results[1], value
    out = []
    Compiler().compile({keyword: [{"type": "string"}, {"type": "integer"}]})(1.5, ("x",), out)
    assert out == ([("x", "Invalid value: 1.5: must be of type string")] if keyword != "allOf"
                   else [("x", "Invalid value: 1.5: must be of type string"),
                         ("x", "Invalid value: 1.5: must be of type integer")])
