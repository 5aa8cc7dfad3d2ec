"""`as=Table` responses (what `kubectl get` asks for): name, printer columns, age."""

from __future__ import annotations

import datetime
import re
from typing import Any

from webordinary.devkit.kube.resources import Resource

_BUILTIN_COLUMNS: dict[str, list[tuple[str, str, str]]] = {
    "deployments": [("Ready", "string", ".status.readyReplicas/.spec.replicas"),
                    ("Up-to-date", "integer", ".status.updatedReplicas"),
                    ("Available", "integer", ".status.availableReplicas")],
    "pods": [("Status", "string", ".status.phase")],
    "services": [("Type", "string", ".spec.type"), ("Cluster-IP", "string", ".spec.clusterIP")],
    "persistentvolumeclaims": [("Status", "string", ".status.phase"),
                               ("Capacity", "string", ".status.capacity.storage")],
    "namespaces": [("Status", "string", ".status.phase")],
    "configmaps": [("Data", "integer", "#data")],
    "secrets": [("Type", "string", ".type"), ("Data", "integer", "#data")],
}


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


_STEP = re.compile(
    r'\.([A-Za-z0-9_\-]+)|\[(\d+)\]|\[\?\(@\.([A-Za-z0-9_\-]+)==["\']([^"\']*)["\']\)\]')


def _json_path(obj: Any, path: str) -> Any:
    """The JSONPath subset printer columns use: .a.b, [0], [?(@.type=="Ready")]."""
    if path.startswith("#"):
        value = obj.get(path[1:]) if isinstance(obj, dict) else None
        return len(value) if isinstance(value, dict) else 0
    if "/" in path:
        left, right = path.split("/", 1)
        return f"{_json_path(obj, left) or 0}/{_json_path(obj, right) or 0}"
    current: Any = obj
    for match in _STEP.finditer(path.strip()):
        key, index, filter_key, filter_value = match.groups()
        if key is not None:
            current = current.get(key) if isinstance(current, dict) else None
        elif index is not None:
            items = current if isinstance(current, list) else []
            current = items[int(index)] if int(index) < len(items) else None
        else:
            items = current if isinstance(current, list) else []
            current = next((i for i in items if isinstance(i, dict)
                            and str(i.get(filter_key)) == filter_value), None)
        if current is None:
            return None
    return current


def _age(timestamp: str | None) -> str:
    if not timestamp:
        return "<unknown>"
    created = datetime.datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.UTC)
    seconds = int((datetime.datetime.now(datetime.UTC) - created).total_seconds())
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def _type_of(columns: list[tuple[str, str, str, int]], name: str) -> str:
    return next((t for n, t, _, _ in columns if n == name), "string")


def as_table(resource: Resource, objs: list[dict[str, Any]], rv: int) -> dict[str, Any]:
    columns: list[tuple[str, str, str, int]] = []
    if resource.custom:
        for column in resource.printer_columns:
            columns.append((column["name"], column.get("type", "string"),
                            column.get("jsonPath", ""), int(column.get("priority", 0))))
    else:
        columns = [(n, t, p, 0) for n, t, p in _BUILTIN_COLUMNS.get(resource.plural, [])]
    definitions = [{"name": "Name", "type": "string", "format": "name",
                    "description": "Name of the object", "priority": 0}]
    definitions += [{"name": n, "type": t, "format": "", "description": p, "priority": pr}
                    for n, t, p, pr in columns]
    if not any(n.lower() == "age" for n, *_ in columns):
        definitions.append({"name": "Age", "type": "string", "format": "",
                            "description": "creation time", "priority": 0})
    rows = []
    for obj in objs:
        meta = obj.get("metadata", {})
        cells: list[Any] = [meta.get("name")]
        for name, _, path, _ in columns:
            value = _json_path(obj, path)
            if value is not None and (_type_of(columns, name) == "date"):
                value = _age(value)
            if value is None and not resource.custom and _type_of(columns, name) == "integer":
                value = 0
            cells.append("<none>" if value is None else value)
        if not any(n.lower() == "age" for n, *_ in columns):
            cells.append(_age(meta.get("creationTimestamp")))
        rows.append({"cells": cells, "object": {
            "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta}})
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": str(rv)}, "columnDefinitions": definitions,
            "rows": rows}
