"""ValidatingAdmissionPolicy evaluation for tests: the API server's steps, CEL by cel-python.

Follows the real admission chain for one request: match constraints (resources, operations)
and the binding's namespaceSelector, matchConditions, params (paramRef selector: every object
given, the policy evaluated once per param; none and `Allow`: admitted), variables in order,
then every validation (a false result or an evaluation error denies; failurePolicy Fail), with
messageExpression as the message. Kubernetes' CEL libraries the policies use are provided
(upperAscii, join, quantity/isQuantity/compareTo); every expression is compiled up front, so
one that uses anything else fails here rather than passing untested.

Not modelled: CEL cost budgets, type checking, the authorizer, auditAnnotations.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import total_ordering
from typing import Any

import celpy
from celpy import celtypes

from webordinary.contracts.specpolicy import parse_quantity


@total_ordering
class Quantity:
    """Kubernetes' quantity CEL type (the comparisons the policies use)."""

    def __init__(self, value: Decimal) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Quantity) and self.value == other.value

    def __lt__(self, other: Quantity) -> bool:
        return self.value < other.value

    def __hash__(self) -> int:
        return hash(self.value)


def _quantity(text: Any) -> Quantity:
    return Quantity(parse_quantity(str(text)))


def _is_quantity(text: Any) -> celtypes.BoolType:
    try:
        parse_quantity(str(text))
    except ValueError:
        return celtypes.BoolType(False)
    return celtypes.BoolType(True)


def _compare_to(left: Quantity, right: Quantity) -> celtypes.IntType:
    return celtypes.IntType((left.value > right.value) - (left.value < right.value))


def _join(items: Any, separator: Any = "") -> celtypes.StringType:
    return celtypes.StringType(str(separator).join(str(item) for item in items))


KUBERNETES_LIBRARY: dict[str, Callable[..., Any]] = {
    "upperAscii": lambda s: celtypes.StringType(str(s).upper()),
    "lowerAscii": lambda s: celtypes.StringType(str(s).lower()),
    "join": _join,
    "quantity": _quantity,
    "isQuantity": _is_quantity,
    "compareTo": _compare_to,
}
_ENV = celpy.Environment()


class Program:
    """One compiled expression."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._program = _ENV.program(_ENV.compile(source), functions=KUBERNETES_LIBRARY)

    def __call__(self, activation: Mapping[str, Any]) -> Any:
        return self._program.evaluate(dict(activation))


@dataclass(frozen=True)
class Request:
    """One admission request, as the API server hands it to CEL."""

    operation: str  # CREATE | UPDATE | DELETE
    username: str
    object: Mapping[str, Any] | None
    old_object: Mapping[str, Any] | None = None
    subresource: str = ""
    namespace: str = "tenants"

    def cel_request(self) -> dict[str, Any]:
        source = self.object or self.old_object or {}
        request: dict[str, Any] = {
            "operation": self.operation,
            "userInfo": {"username": self.username},
            "resource": {"group": "webordinary.dev", "version": "v1alpha1",
                         "resource": "editenvironments"},
            "namespace": self.namespace,
            "name": (source.get("metadata") or {}).get("name", ""),
        }
        if self.subresource:  # omitempty, like admission.k8s.io/v1 AdmissionRequest
            request["subResource"] = self.subresource
        return request


class Policy:
    """A ValidatingAdmissionPolicy with its binding."""

    def __init__(self, policy: Mapping[str, Any], binding: Mapping[str, Any]) -> None:
        self.policy, self.binding = policy, binding
        spec = policy["spec"]
        assert binding["spec"]["policyName"] == policy["metadata"]["name"]
        assert spec.get("failurePolicy", "Fail") == "Fail"
        self.conditions = [Program(c["expression"]) for c in spec.get("matchConditions", [])]
        self.variables = [(v["name"], Program(v["expression"]))
                          for v in spec.get("variables", [])]
        self.validations = [
            (Program(v["expression"]),
             Program(v["messageExpression"]) if "messageExpression" in v else None,
             v.get("message", f"failed expression: {v['expression']}"))
            for v in spec["validations"]
        ]

    @property
    def name(self) -> str:
        return str(self.policy["metadata"]["name"])

    def matches(self, request: Request) -> bool:
        resource = "editenvironments" + (f"/{request.subresource}" if request.subresource else "")
        rules = self.policy["spec"]["matchConstraints"]["resourceRules"]
        if not any(resource in r["resources"] and request.operation in r["operations"]
                   for r in rules):
            return False
        selector = self.binding["spec"].get("matchResources", {}).get("namespaceSelector", {})
        namespace_labels = {"kubernetes.io/metadata.name": request.namespace}
        return all(namespace_labels.get(k) == v
                   for k, v in selector.get("matchLabels", {}).items())

    def _activation(self, request: Request, param: Mapping[str, Any] | None) -> dict[str, Any]:
        return {
            "object": celpy.json_to_cel(copy.deepcopy(request.object)),
            "oldObject": celpy.json_to_cel(copy.deepcopy(request.old_object)),
            "request": celpy.json_to_cel(request.cel_request()),
            "params": celpy.json_to_cel(copy.deepcopy(param)),
        }

    def denials(self, request: Request, params: Sequence[Mapping[str, Any]] = ()) -> list[str]:
        """The messages this policy denies the request with (empty: admitted)."""
        if not self.matches(request):
            return []
        base = self._activation(request, None)
        for condition in self.conditions:
            try:
                if not condition(base):
                    return []
            except celpy.CELEvalError as error:
                return [f"{self.name}: matchCondition error: {error}"]
        if "paramKind" in self.policy["spec"]:
            if not params:
                action = self.binding["spec"]["paramRef"]["parameterNotFoundAction"]
                return [] if action == "Allow" else [f"{self.name}: no params"]
            out: list[str] = []
            for param in params:
                out.extend(m for m in self._validate(request, param) if m not in out)
            return out
        return self._validate(request, None)

    def _validate(self, request: Request, param: Mapping[str, Any] | None) -> list[str]:
        activation = self._activation(request, param)
        values: dict[str, Any] = {}
        failures: list[str] = []
        for name, program in self.variables:
            try:
                values[name] = program({**activation, "variables": celtypes.MapType(values)})
            except celpy.CELEvalError as error:
                return [f"{self.name}: variable {name} error: {error}"]
        activation["variables"] = celtypes.MapType(
            {celtypes.StringType(k): v for k, v in values.items()})
        for check, message, fallback in self.validations:
            try:
                ok = check(activation)
            except celpy.CELEvalError as error:
                failures.append(f"{self.name}: expression error: {error} in {check.source}")
                continue
            if ok is True or ok == celtypes.BoolType(True):
                continue
            text = fallback
            if message is not None:
                try:
                    text = str(message(activation))
                except celpy.CELEvalError as error:
                    text = f"{fallback} (messageExpression error: {error})"
            failures.append(text)
        return failures


def policies(objects: Sequence[Mapping[str, Any]]) -> list[Policy]:
    """Every policy of a rendered chart with its binding."""
    bindings = {b["spec"]["policyName"]: b for b in objects
                if b["kind"] == "ValidatingAdmissionPolicyBinding"}
    return [Policy(p, bindings[p["metadata"]["name"]]) for p in objects
            if p["kind"] == "ValidatingAdmissionPolicy"]


def admit(chart_policies: Sequence[Policy], request: Request,
          secrets: Sequence[Mapping[str, Any]] = ()) -> list[str]:
    """Every denial message of every policy (empty: the API server admits the request)."""
    return [m for p in chart_policies for m in p.denials(request, secrets)]


def apply_defaults(obj: Any, schema: Mapping[str, Any]) -> Any:
    """Structural defaulting like the API server's for a custom resource (recursively, also
    inside objects that were themselves defaulted)."""
    if isinstance(obj, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if key not in obj and "default" in sub:
                obj[key] = copy.deepcopy(sub["default"])
            if key in obj:
                apply_defaults(obj[key], sub)
    elif isinstance(obj, list) and "items" in schema:
        for item in obj:
            apply_defaults(item, schema["items"])
    return obj


def json_patch(obj: Mapping[str, Any], ops: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """RFC 6902 add/remove/replace/test (what Hermes sends)."""
    result: dict[str, Any] = copy.deepcopy(dict(obj))
    for op in ops:
        *parents, last = [p.replace("~1", "/").replace("~0", "~")
                          for p in op["path"].lstrip("/").split("/")]
        target: Any = result
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        if op["op"] == "test":
            have = target[int(last)] if isinstance(target, list) else target.get(last)
            assert have == op["value"], f"test failed at {op['path']}"
        elif op["op"] == "remove":
            del target[int(last) if isinstance(target, list) else last]
        elif isinstance(target, list):
            index = len(target) if last == "-" else int(last)
            if op["op"] == "replace":
                target[index] = op["value"]
            else:
                target.insert(index, op["value"])
        else:
            target[last] = op["value"]
    return result


def merge_patch(obj: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(obj) if isinstance(obj, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result
