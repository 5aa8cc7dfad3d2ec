"""VAP evaluation for tests (the emulator's, devkit.kube.admission) and request helpers."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from webordinary.devkit.kube.admission import Policy, Request, admit, policies

__all__ = ["Policy", "Request", "admit", "apply_defaults", "json_patch", "merge_patch",
           "policies"]


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
