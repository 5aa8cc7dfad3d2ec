"""Empty optional fields of built-ins dropped, as the API server's encoding drops them.

Go's `omitempty` leaves out an empty string, list or map (and a nil pointer) of an optional
field, so a Deployment sent with `env: [{name: X, value: ""}]`, `args: []` or
`annotations: {}` comes back without them. Structs are never omitted (`resources: {}`,
`securityContext: {}` stay), nor are required fields. The official schemas say which fields
are required and which are strings, lists, maps or structs; that is all this needs.
Zeros and `false` of non-pointer optional fields (which Go also omits) are kept: the schema
cannot tell a pointer from a value.
"""

from __future__ import annotations

from functools import cache
from typing import Any

Schema = dict[str, Any]


def _types(schema: Schema) -> tuple[str, ...]:
    raw = schema.get("type")
    if isinstance(raw, str):
        return (raw,)
    if isinstance(raw, list):
        return tuple(str(t) for t in raw)
    return ()


class Pruner:
    """Drops empty optional fields of objects of one schema family (`$ref`s into
    `definitions`)."""

    def __init__(self, definitions: dict[str, Schema]) -> None:
        self.definitions = definitions

    def resolve(self, schema: Schema) -> Schema:
        seen = 0
        while "$ref" in schema and seen < 16:
            schema = self.definitions.get(str(schema["$ref"]).rsplit("/", 1)[-1], {})
            seen += 1
        return schema

    def is_empty(self, value: Any, schema: Schema) -> bool:
        if value is None:
            return True
        if value or not isinstance(value, str | list | dict):
            return False  # the common case, decided before any schema lookup (a hot path)
        if schema.get("x-kubernetes-int-or-string"):
            return False
        types = _types(schema)
        if value == "" and "string" in types:
            return True
        if value == [] and "array" in types:
            return True
        # a map (labels, annotations, nodeSelector, ...) but not a struct
        return bool(value == {} and "object" in types and not schema.get("properties")
                    and isinstance(schema.get("additionalProperties"), dict))

    def prune(self, value: Any, schema: Schema, keep: Any = None) -> None:
        """Drop, in place, what the server's encoding would leave out (`keep`: a part known to
        be pruned already, left as it is)."""
        schema = self.resolve(schema)
        if isinstance(value, dict):
            properties = schema.get("properties")
            if properties:
                required = set(schema.get("required") or ())
                for key in list(value):
                    sub = properties.get(key)
                    if sub is None:
                        continue
                    item = value[key]
                    if keep is not None and item is keep:
                        continue
                    sub = self.resolve(sub)
                    if key not in required and self.is_empty(item, sub):
                        del value[key]
                    elif isinstance(item, dict | list):
                        self.prune(item, sub, keep)
            else:
                additional = schema.get("additionalProperties")
                if isinstance(additional, dict):
                    for item in value.values():
                        if isinstance(item, dict | list):
                            self.prune(item, additional)
        elif isinstance(value, list):
            items = schema.get("items")
            if isinstance(items, dict):
                for item in value:
                    if isinstance(item, dict | list):
                        self.prune(item, items)


@cache
def _builtin_pruner() -> Pruner:
    from webordinary.devkit.kube.validation import builtin_definitions

    return Pruner(builtin_definitions())


def drop_empty_builtin(api_version: str, kind: str, obj: dict[str, Any],
                       keep: Any = None) -> None:
    """Drop empty optional fields of a built-in object in place (unknown kinds: untouched;
    `keep`: a part of it known to be pruned already)."""
    from webordinary.devkit.kube.validation import builtin_schema

    schema = builtin_schema(api_version, kind)
    if schema is not None:
        _builtin_pruner().prune(obj, schema, keep)


def drop_empty_builtin_status(api_version: str, kind: str, obj: dict[str, Any]) -> None:
    """The same for the status alone (a `/status` write: the rest is as stored)."""
    from webordinary.devkit.kube.validation import builtin_status_schema

    schema = builtin_status_schema(api_version, kind)
    if schema is not None and isinstance(obj.get("status"), dict | list):
        _builtin_pruner().prune(obj["status"], schema)
