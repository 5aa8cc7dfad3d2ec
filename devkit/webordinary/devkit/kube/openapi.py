"""`/openapi/v3`: the documents kubectl reads to learn that the server validates fields itself.

Built-in group-versions get the official component schemas (bundled by kubernetes-validate,
with their x-kubernetes-group-version-kind and patch-merge-key extensions); custom
resources get their CRD schema. Each resource's PATCH operation is published with the
`fieldValidation` and `dryRun` query parameters (how kubectl decides to leave validation to
the server) but without request bodies, so kubectl computes apply patches from its
compiled-in types (strategic) or as JSON merge patches (custom resources).
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from importlib import resources as importlib_resources
from typing import Any

from webordinary.devkit.kube.resources import Resource
from webordinary.devkit.kube.validation import KUBE_VERSION


@cache
def _builtin_components() -> bytes:
    base = importlib_resources.files("kubernetes_validate").joinpath(
        f"kubernetes-json-schema/v{KUBE_VERSION}-local-strict")
    text = base.joinpath("_definitions.json").read_text()
    text = text.replace('"#/$defs/', '"#/components/schemas/')
    definitions = _openapi_types(json.loads(text)["$defs"])
    return json.dumps(definitions, separators=(",", ":")).encode()


def _openapi_types(schema: Any) -> Any:
    """JSON-schema `type: [T, "null"]` -> OpenAPI 3.0 `type: T` (kubectl explain needs it)."""
    if isinstance(schema, list):
        return [_openapi_types(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {key: _openapi_types(value) for key, value in schema.items()}
    kind = schema.get("type")
    if isinstance(kind, list):
        concrete = [t for t in kind if t != "null"]
        if len(concrete) == 1:
            result["type"] = concrete[0]
        else:
            result.pop("type")
    return result


def _gv_path(resource: Resource) -> str:
    return f"apis/{resource.group}/{resource.version}" if resource.group else "api/v1"


def root(resources: list[Resource]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for resource in resources:
        path = _gv_path(resource)
        digest = hashlib.sha1(path.encode()).hexdigest()[:16].upper()
        paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
    return {"paths": paths}


def _paths(resources: list[Resource]) -> dict[str, Any]:
    parameters = [{"name": name, "in": "query", "schema": {"type": "string"}}
                  for name in ("dryRun", "fieldManager", "fieldValidation", "force")]
    paths: dict[str, Any] = {}
    for resource in resources:
        prefix = f"/apis/{resource.group}/{resource.version}" if resource.group else "/api/v1"
        scope = "/namespaces/{namespace}" if resource.namespaced else ""
        gvk = {"group": resource.group, "version": resource.version, "kind": resource.kind}
        paths[f"{prefix}{scope}/{resource.plural}/{{name}}"] = {
            "patch": {"operationId": f"patch{resource.kind}", "parameters": parameters,
                      "x-kubernetes-action": "patch", "x-kubernetes-group-version-kind": gvk},
        }
    return paths


def document(resources: list[Resource]) -> bytes | None:
    """The OpenAPI v3 document of one group-version, or None when it is not served."""
    if not resources:
        return None
    info = {"title": "Kubernetes", "version": f"v{KUBE_VERSION}"}
    custom = [r for r in resources if r.custom]
    paths = _paths(resources)
    if not custom:
        head = json.dumps({"openapi": "3.0.0", "info": info, "paths": paths},
                          separators=(",", ":"))
        return (head[:-1] + ',"components":{"schemas":').encode() + _builtin_components() + b"}}"
    schemas: dict[str, Any] = {}
    for resource in custom:
        reverse = ".".join(reversed(resource.group.split(".")))
        schema = dict(resource.schema or {"type": "object"})
        schema["x-kubernetes-group-version-kind"] = [
            {"group": resource.group, "version": resource.version, "kind": resource.kind}]
        schemas[f"{reverse}.{resource.version}.{resource.kind}"] = schema
    return json.dumps({"openapi": "3.0.0", "info": info, "paths": paths,
                       "components": {"schemas": schemas}}, separators=(",", ":")).encode()
