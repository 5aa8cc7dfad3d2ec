"""JSON patch (RFC 6902), JSON merge patch (RFC 7386) and strategic merge patch.

Strategic merge reads each list's strategy and merge key from the built-in's official schema
(x-kubernetes-patch-strategy / -merge-key, what the real server reads from its Go types).
Without a schema it falls back to field names: containers/initContainers/
ephemeralContainers/env/volumes/imagePullSecrets/resourceClaims by `name`, container ports
by `containerPort` (other ports by `port`), volumeMounts by `mountPath`, volumeDevices by
`devicePath`, ownerReferences by `uid`, conditions by `type`, hostAliases by `ip`;
`finalizers` is a merged primitive list. Every other list is replaced.
Directives honoured: `$patch: replace|delete`, `$deleteFromPrimitiveList/<field>`,
`$setElementOrder/<field>` (orders the merged list), `$retainKeys`.
"""

from __future__ import annotations

from typing import Any

from webordinary.devkit.kube.data import clone
from webordinary.devkit.kube.errors import ApiError, bad_request

_MISSING = object()


def _patch_error(message: str) -> ApiError:
    return ApiError(422, "Invalid", message)


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise bad_request(f'invalid JSON pointer "{path}": must start with "/"')
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _index(container: list[Any], token: str, *, for_add: bool, path: str) -> int:
    if token == "-" and for_add:
        return len(container)
    if not token.isdigit() or (len(token) > 1 and token.startswith("0")):
        raise _patch_error(f'invalid array index "{token}" in path "{path}"')
    index = int(token)
    limit = len(container) if for_add else len(container) - 1
    if index > limit:
        raise _patch_error(f'array index {index} out of bounds in path "{path}"')
    return index


def _resolve(doc: Any, tokens: list[str], path: str) -> Any:
    current = doc
    for token in tokens:
        if isinstance(current, dict):
            if token not in current:
                raise _patch_error(f'doc is missing path: "{path}"')
            current = current[token]
        elif isinstance(current, list):
            current = current[_index(current, token, for_add=False, path=path)]
        else:
            raise _patch_error(f'doc is missing path: "{path}"')
    return current


def _add(doc: Any, tokens: list[str], value: Any, path: str) -> Any:
    if not tokens:
        return value
    parent = _resolve(doc, tokens[:-1], path)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, for_add=True, path=path), value)
    else:
        raise _patch_error(f'doc is missing path: "{path}"')
    return doc


def _remove(doc: Any, tokens: list[str], path: str) -> Any:
    if not tokens:
        raise _patch_error("cannot remove the whole document")
    parent = _resolve(doc, tokens[:-1], path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise _patch_error(f'unable to remove nonexistent key: {last}: missing value')
        return parent.pop(last)
    if isinstance(parent, list):
        return parent.pop(_index(parent, last, for_add=False, path=path))
    raise _patch_error(f'doc is missing path: "{path}"')


def apply_json_patch(doc: dict[str, Any], patch: Any) -> dict[str, Any]:
    """Apply RFC 6902 operations; a failed `test` or a missing path is a 422 like the API."""
    if not isinstance(patch, list):
        raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    result: Any = clone(doc)
    for operation in patch:
        if not isinstance(operation, dict) or "op" not in operation or "path" not in operation:
            raise bad_request(f"invalid JSON patch operation: {operation!r}")
        op, path = operation["op"], operation["path"]
        tokens = _pointer(path)
        if op in ("add", "replace", "test") and "value" not in operation:
            raise bad_request(f'missing value in JSON patch operation "{op}" at "{path}"')
        value = clone(operation.get("value"))
        if op == "add":
            result = _add(result, tokens, value, path)
        elif op == "remove":
            _remove(result, tokens, path)
        elif op == "replace":
            _resolve(result, tokens, path)
            if tokens:
                _remove(result, tokens, path)
            result = _add(result, tokens, value, path)
        elif op == "test":
            actual = _resolve(result, tokens, path)
            numbers = all(isinstance(v, int | float) and not isinstance(v, bool)
                          for v in (actual, value))
            if actual != value or (type(actual) is not type(value) and not numbers):
                raise _patch_error(f"testing value {path} failed: test failed")
        elif op in ("move", "copy"):
            source = operation.get("from")
            if not isinstance(source, str):
                raise bad_request(f'missing from in JSON patch operation "{op}"')
            from_tokens = _pointer(source)
            if op == "move":
                moved = _remove(result, from_tokens, source)
            else:
                moved = clone(_resolve(result, from_tokens, source))
            result = _add(result, tokens, moved, path)
        else:
            raise bad_request(f'unexpected JSON patch operation "{op}"')
    if not isinstance(result, dict):
        raise _patch_error("the patched document is not an object")
    return result


def apply_merge_patch(doc: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, null deletes, everything else replaces."""
    if not isinstance(patch, dict):
        return clone(patch)
    result = dict(doc) if isinstance(doc, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value)
    return result


_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "imagePullSecrets": "name",
    "resourceClaims": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "ownerReferences": "uid",
    "conditions": "type",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
}
_PRIMITIVE_MERGE = {"finalizers"}


class PatchMeta:
    """Patch strategies read from a built-in's schema (x-kubernetes-patch-strategy and
    -merge-key, as the real server reads them from its Go types)."""

    def __init__(self, schema: dict[str, Any], definitions: dict[str, Any]) -> None:
        self.definitions = definitions
        self.schema = self._resolve(schema)

    def _resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        seen = 0
        while "$ref" in schema and seen < 20:
            name = str(schema["$ref"]).rsplit("/", 1)[-1]
            extensions = {k: v for k, v in schema.items() if k.startswith("x-kubernetes-patch")}
            schema = {**self.definitions.get(name, {}), **extensions}
            seen += 1
        return schema

    def field(self, key: str) -> PatchMeta | None:
        properties = self.schema.get("properties") or {}
        if key in properties:
            return PatchMeta(properties[key], self.definitions)
        additional = self.schema.get("additionalProperties")
        if isinstance(additional, dict):
            return PatchMeta(additional, self.definitions)
        return None

    def items(self) -> PatchMeta | None:
        items = self.schema.get("items")
        return PatchMeta(items, self.definitions) if isinstance(items, dict) else None

    def list_strategy(self) -> tuple[bool, str | None]:
        strategy = str(self.schema.get("x-kubernetes-patch-strategy", ""))
        return "merge" in strategy.split(","), self.schema.get("x-kubernetes-patch-merge-key")


def _merge_key(field: str, items: list[Any]) -> str | None:
    if field == "ports":
        for item in items:
            if isinstance(item, dict) and "containerPort" in item:
                return "containerPort"
        return "port"
    return _MERGE_KEYS.get(field)


def _list_plan(field: str, items: list[Any], meta: PatchMeta | None) -> tuple[bool, str | None]:
    """(merge?, merge key); a merge without key merges a list of scalars as a set."""
    if meta is not None:
        return meta.list_strategy()
    if field in _PRIMITIVE_MERGE:
        return True, None
    key = _merge_key(field, items)
    return key is not None, key


def _merge_list(
    field: str, old: Any, patch: list[Any], order: list[Any] | None, meta: PatchMeta | None
) -> list[Any]:
    old_list = list(old) if isinstance(old, list) else []
    item_meta = meta.items() if meta is not None else None
    merge, key = _list_plan(field, old_list + patch, meta)
    if not merge:
        return [strategic_merge(None, item, item_meta) for item in patch]
    if key is None:
        merged = old_list + [item for item in patch if item not in old_list]
    else:
        if not all(isinstance(item, dict) for item in old_list + patch):
            return [strategic_merge(None, item, item_meta) for item in patch]
        merged = [clone(item) for item in old_list]
        for item in patch:
            directive = item.get("$patch")
            if directive == "delete":
                merged = [m for m in merged if m.get(key) != item.get(key)]
                continue
            if directive == "replace":
                raise bad_request("$patch: replace in a list item is not supported")
            for index, existing in enumerate(merged):
                if existing.get(key) == item.get(key):
                    merged[index] = strategic_merge(existing, item, item_meta)
                    break
            else:
                merged.append(strategic_merge(None, item, item_meta))
    if order is not None:
        if key is None:
            rank = {json_key(value): i for i, value in enumerate(order)}
            merged.sort(key=lambda v: rank.get(json_key(v), len(rank)))
        else:
            rank = {json_key(entry.get(key)): i for i, entry in enumerate(order)
                    if isinstance(entry, dict)}
            merged.sort(key=lambda v: rank.get(json_key(v.get(key)), len(rank)))
    return merged


def json_key(value: Any) -> str:
    return repr(value)


def strategic_merge(doc: Any, patch: Any, meta: PatchMeta | None = None) -> Any:
    """Strategic merge patch: list strategies from `meta` (a built-in's schema) when given,
    else from field names (see the module docstring)."""
    if not isinstance(patch, dict):
        if isinstance(patch, list):
            item_meta = meta.items() if meta is not None else None
            return [strategic_merge(None, item, item_meta) for item in patch]
        return clone(patch)
    if patch.get("$patch") == "replace":
        return {k: strategic_merge(None, v, _field(meta, k)) for k, v in patch.items()
                if k != "$patch"}
    if patch.get("$patch") == "delete":
        return _MISSING
    result = dict(doc) if isinstance(doc, dict) else {}
    retain = patch.get("$retainKeys")
    orders = {k.split("/", 1)[1]: v for k, v in patch.items() if k.startswith("$setElementOrder/")}
    for key, value in patch.items():
        if key.startswith("$"):
            if key.startswith("$deleteFromPrimitiveList/"):
                field = key.split("/", 1)[1]
                if isinstance(result.get(field), list) and isinstance(value, list):
                    result[field] = [v for v in result[field] if v not in value]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list):
            result[key] = _merge_list(key, result.get(key), value, orders.get(key),
                                      _field(meta, key))
        else:
            merged = strategic_merge(result.get(key), value, _field(meta, key))
            if merged is _MISSING:
                result.pop(key, None)
            else:
                result[key] = merged
    for key, order in orders.items():
        if key not in patch and isinstance(result.get(key), list):
            result[key] = _merge_list(key, result[key], [], order, _field(meta, key))
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _field(meta: PatchMeta | None, key: str) -> PatchMeta | None:
    return meta.field(key) if meta is not None else None
