"""The EditEnvironment CRD, generated from the pydantic models (one source of truth).

Regenerate with ``python -m webordinary.operator.crd > crds/editenvironments.webordinary.dev.yaml``;
a unit test keeps the file equal to this output.
"""

from __future__ import annotations

import copy
import sys
from typing import Any

import yaml
from pydantic import BaseModel

from webordinary.contracts import environment as env

CRD_NAME = f"{env.PLURAL}.{env.GROUP}"
IMMUTABLE_FIELDS = ("clientId", "projectId", "userId")
# JSON-schema keywords that a structural Kubernetes schema does not accept or need.
_DROPPED = {"title", "$defs", "additionalProperties"}

_READY = '.status.conditions[?(@.type=="Ready")]'
PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Client", "type": "string", "jsonPath": ".spec.clientId"},
    {"name": "Project", "type": "string", "jsonPath": ".spec.projectId"},
    {"name": "User", "type": "string", "jsonPath": ".spec.userId"},
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Sessions", "type": "integer", "jsonPath": ".status.sessionCount"},
    {"name": "Ready", "type": "string", "jsonPath": _READY + ".status"},
    {"name": "Last Activity", "type": "date", "jsonPath": ".status.lastActivity"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {"name": "Replicas", "type": "integer", "jsonPath": ".status.replicas", "priority": 1},
    {"name": "Idle Timeout", "type": "string", "jsonPath": ".spec.idleTimeout", "priority": 1},
    {"name": "Suspended", "type": "boolean", "jsonPath": ".spec.suspend", "priority": 1},
    {"name": "Input Queue", "type": "string", "jsonPath": ".status.queues.input", "priority": 1},
    {
        "name": "Reason",
        "type": "string",
        "jsonPath": _READY + ".reason",
        "priority": 1,
    },
    {"name": "Message", "type": "string", "jsonPath": ".status.message", "priority": 1},
]


def _structural(node: Any, defs: dict[str, Any]) -> Any:
    """Inline $refs, turn Optional into nullable, drop what Kubernetes rejects."""
    if isinstance(node, list):
        return [_structural(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        node = {**copy.deepcopy(target), **node}
    if "anyOf" in node:
        variants = [v for v in node.pop("anyOf") if v.get("type") != "null"]
        if len(variants) != 1:
            raise ValueError(f"cannot express anyOf {variants!r} in a structural schema")
        node = {**_structural(variants[0], defs), **node, "nullable": True}
    if node.get("default", 0) is None:
        node.pop("default")
    result: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED and not (key == "additionalProperties" and isinstance(value, dict)):
            continue
        if key == "properties":
            result[key] = {name: _structural(sub, defs) for name, sub in value.items()}
        else:
            result[key] = _structural(value, defs)
    return result


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The openAPIV3Schema fragment for one wire model."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    schema: dict[str, Any] = _structural(raw, raw.get("$defs", {}))
    return schema


def _defaulted_objects(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """Objects built by default_factory default to {} so the API server fills their fields."""
    for name, field in model.model_fields.items():
        alias = field.alias or name
        sub = schema["properties"].get(alias)
        if sub is None or field.default_factory is None or "default" in sub:
            continue
        if sub.get("type") == "object":
            sub["default"] = {}
        elif sub.get("type") == "array":
            sub["default"] = []


def spec_schema() -> dict[str, Any]:
    schema = model_schema(env.EditEnvironmentSpec)
    _defaulted_objects(schema, env.EditEnvironmentSpec)
    for sub_name, sub_model in (
        ("storage", env.Storage),
        ("editor", env.EditorOverrides),
        ("queues", env.Queues),
        ("resources", env.Resources),
    ):
        if sub_name in schema["properties"]:
            _defaulted_objects(schema["properties"][sub_name], sub_model)
    _defaulted_objects(schema["properties"]["editor"]["properties"]["resources"], env.Resources)
    for field in IMMUTABLE_FIELDS:
        schema["properties"][field]["x-kubernetes-validations"] = [
            {"rule": "self == oldSelf", "message": f"{field} is immutable"}
        ]
    schema["properties"]["sessions"]["x-kubernetes-list-type"] = "set"
    return schema


def status_schema() -> dict[str, Any]:
    schema = model_schema(env.EditEnvironmentStatus)
    conditions = schema["properties"]["conditions"]
    conditions["x-kubernetes-list-type"] = "map"
    conditions["x-kubernetes-list-map-keys"] = ["type"]
    return schema


def build_crd() -> dict[str, Any]:
    """The CustomResourceDefinition as a plain dict."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": CRD_NAME,
            "labels": {"app.kubernetes.io/part-of": "webordinary"},
        },
        "spec": {
            "group": env.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": env.KIND,
                "listKind": f"{env.KIND}List",
                "plural": env.PLURAL,
                "singular": env.SINGULAR,
                "shortNames": list(env.SHORT_NAMES),
                "categories": list(env.CATEGORIES),
            },
            "versions": [
                {
                    "name": env.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "An email-driven website edit environment.",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema(),
                                "status": status_schema(),
                            },
                        }
                    },
                }
            ],
        },
    }


def render() -> str:
    """The CRD as the YAML file checked into crds/."""
    header = (
        "# Generated by `python -m webordinary.operator.crd`: do not edit by hand.\n"
        "# Source of truth: contracts/webordinary/contracts/environment.py\n"
    )
    return header + yaml.safe_dump(build_crd(), sort_keys=False, width=100)


def main() -> None:
    sys.stdout.write(render())


if __name__ == "__main__":
    main()
