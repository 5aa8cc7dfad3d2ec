"""ValidatingAdmissionPolicy evaluation: the API server's steps, CEL by cel-python.

The emulator runs it on every write (`AdmissionChain`), and tests call it directly.

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
from celpy.adapter import json_to_cel
from celpy.evaluation import CELEvalError

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


def _cel(value: Mapping[str, Any] | None) -> Any:
    return json_to_cel(copy.deepcopy(dict(value)) if value is not None else None)


def _listed(value: str, allowed: Sequence[str]) -> bool:
    return "*" in allowed or value in allowed


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
    group: str = "webordinary.dev"
    version: str = "v1alpha1"
    plural: str = "editenvironments"

    def cel_request(self) -> dict[str, Any]:
        source = self.object or self.old_object or {}
        request: dict[str, Any] = {
            "operation": self.operation,
            "userInfo": {"username": self.username},
            "resource": {"group": self.group, "version": self.version,
                         "resource": self.plural},
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
             v.get("message", f"failed expression: {v['expression']}"),
             str(v.get("reason", "Invalid")))
            for v in spec["validations"]
        ]
        self._reasons: dict[str, str] = {}

    def reason_of(self, message: str) -> str:
        """The `reason` of the validation that produced a denial message."""
        return self._reasons.get(message, "Invalid")

    @property
    def name(self) -> str:
        return str(self.policy["metadata"]["name"])

    def matches(self, request: Request,
                namespace_labels: Mapping[str, str] | None = None) -> bool:
        """matchConstraints' resourceRules and the binding's namespaceSelector (matchLabels)."""
        resource = request.plural + (f"/{request.subresource}" if request.subresource else "")
        rules = self.policy["spec"]["matchConstraints"]["resourceRules"]
        if not any(_listed(request.group, r.get("apiGroups", []))
                   and _listed(request.version, r.get("apiVersions", []))
                   and _listed(resource, r.get("resources", []))
                   and _listed(request.operation, r.get("operations", []))
                   for r in rules):
            return False
        selector = self.binding["spec"].get("matchResources", {}).get("namespaceSelector", {})
        labels = namespace_labels or {"kubernetes.io/metadata.name": request.namespace}
        return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())

    def _activation(self, request: Request, param: Mapping[str, Any] | None) -> dict[str, Any]:
        return {
            "object": _cel(request.object),
            "oldObject": _cel(request.old_object),
            "request": _cel(request.cel_request()),
            "params": _cel(param),
        }

    def denials(self, request: Request, params: Sequence[Mapping[str, Any]] = (),
                namespace_labels: Mapping[str, str] | None = None) -> list[str]:
        """The messages this policy denies the request with (empty: admitted)."""
        if not self.matches(request, namespace_labels):
            return []
        base = self._activation(request, None)
        for condition in self.conditions:
            try:
                if not condition(base):
                    return []
            except CELEvalError as error:
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
            except CELEvalError as error:
                return [f"{self.name}: variable {name} error: {error}"]
        activation["variables"] = celtypes.MapType(
            {celtypes.StringType(k): v for k, v in values.items()})
        for check, message, fallback, reason in self.validations:
            try:
                ok = check(activation)
            except CELEvalError as error:
                failures.append(f"{self.name}: expression error: {error} in {check.source}")
                continue
            if ok is True or ok == celtypes.BoolType(True):
                continue
            text = fallback
            if message is not None:
                try:
                    text = str(message(activation))
                except CELEvalError as error:
                    text = f"{fallback} (messageExpression error: {error})"
            self._reasons[text] = reason
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




VAP_KEY = ("admissionregistration.k8s.io", "validatingadmissionpolicies")
BINDING_KEY = ("admissionregistration.k8s.io", "validatingadmissionpolicybindings")
DENY_STATUS = {"Forbidden": 403, "Invalid": 422, "Unauthorized": 401,
               "RequestEntityTooLarge": 413}


@dataclass(frozen=True)
class Denial:
    """Why a policy refused a write, as the API server words it."""

    policy: str
    binding: str
    message: str
    reason: str

    @property
    def code(self) -> int:
        return DENY_STATUS.get(self.reason, 403)


class AdmissionChain:
    """Validating admission of an emulator: every ValidatingAdmissionPolicy stored with a
    binding is evaluated on each write (after defaulting and schema validation, like a real
    server); params are the objects of the policy's paramKind its paramRef selects."""

    def __init__(self, objects: Callable[[tuple[str, str]], Mapping[Any, Mapping[str, Any]]],
                 namespace_labels: Callable[[str], Mapping[str, str]]) -> None:
        self._objects = objects
        self._namespace_labels = namespace_labels
        self._compiled: dict[tuple[str, str], Policy] = {}

    def _policies(self) -> list[Policy]:
        stored = {o["metadata"]["name"]: o for o in self._objects(VAP_KEY).values()}
        found: list[Policy] = []
        for binding in self._objects(BINDING_KEY).values():
            policy = stored.get(binding["spec"]["policyName"])
            if policy is None:  # a binding to a missing policy is ignored (as documented)
                continue
            key = (policy["metadata"]["resourceVersion"], binding["metadata"]["resourceVersion"])
            if key not in self._compiled:
                self._compiled[key] = Policy(policy, binding)
            found.append(self._compiled[key])
        return found

    def _params(self, policy: Policy, request: Request) -> list[Mapping[str, Any]]:
        kind = policy.policy["spec"].get("paramKind")
        if not kind:
            return []
        group = kind["apiVersion"].rpartition("/")[0]
        plural = kind["kind"].lower() + "s"  # the kinds used as params here: Secret, ConfigMap
        ref = policy.binding["spec"].get("paramRef") or {}
        namespace = ref.get("namespace") or request.namespace
        selector = (ref.get("selector") or {}).get("matchLabels") or {}
        return [obj for (ns, name), obj in self._objects((group, plural)).items()
                if ns == namespace and (not ref.get("name") or name == ref["name"])
                and all((obj["metadata"].get("labels") or {}).get(k) == v
                        for k, v in selector.items())]

    def check(self, request: Request) -> Denial | None:
        """The first denial of the first policy that refuses the request (None: admitted)."""
        labels = self._namespace_labels(request.namespace) if request.namespace else {}
        for policy in self._policies():
            if "Deny" not in policy.binding["spec"].get("validationActions", []):
                continue
            messages = policy.denials(request, self._params(policy, request), labels)
            if messages:
                return Denial(policy.name, str(policy.binding["metadata"]["name"]), messages[0],
                              policy.reason_of(messages[0]))
        return None
