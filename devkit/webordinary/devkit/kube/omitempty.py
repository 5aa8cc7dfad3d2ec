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


# What an empty value of a field's schema is dropped as: "" (a string), [] (a list), {} (a map)
_EMPTY_TYPES = {"string": str, "array": list}


class _Plan:
    """One resolved schema, ready to prune with: per property, its resolved schema, whether
    it may be dropped when empty, and which empty values count (str / list / dict)."""

    __slots__ = ("additional", "fields", "items", "schema")

    def __init__(self, pruner: Pruner, schema: Schema) -> None:
        self.schema = schema  # kept alive: plans are found by the schema's id
        # per property: [its schema, may be dropped, empty types, its plan (once needed)]
        self.fields: dict[str, list[Any]] = {}
        properties = schema.get("properties")
        if properties:
            required = set(schema.get("required") or ())
            for key, sub in properties.items():
                sub = pruner.resolve(sub)
                self.fields[key] = [sub, key not in required, pruner.empty_types(sub), None]
        additional = schema.get("additionalProperties")
        self.additional = (pruner.resolve(additional)
                           if not properties and isinstance(additional, dict) else None)
        items = schema.get("items")
        self.items = pruner.resolve(items) if isinstance(items, dict) else None


class Pruner:
    """Drops empty optional fields of objects of one schema family (`$ref`s into
    `definitions`)."""

    def __init__(self, definitions: dict[str, Schema]) -> None:
        self.definitions = definitions
        self._plans: dict[int, _Plan] = {}

    def resolve(self, schema: Schema) -> Schema:
        seen = 0
        while "$ref" in schema and seen < 16:
            schema = self.definitions.get(str(schema["$ref"]).rsplit("/", 1)[-1], {})
            seen += 1
        return schema

    def empty_types(self, schema: Schema) -> frozenset[type]:
        """The types whose empty value (`""`, `[]`, `{}`) the encoding leaves out here."""
        if schema.get("x-kubernetes-int-or-string"):
            return frozenset()
        types = _types(schema)
        empty = {_EMPTY_TYPES[t] for t in types if t in _EMPTY_TYPES}
        # a map (labels, annotations, nodeSelector, ...) but not a struct
        if "object" in types and not schema.get("properties") and isinstance(
                schema.get("additionalProperties"), dict):
            empty.add(dict)
        return frozenset(empty)

    def is_empty(self, value: Any, schema: Schema) -> bool:
        if value is None:
            return True
        if value or not isinstance(value, str | list | dict):
            return False
        return type(value) in self.empty_types(schema)

    def _plan(self, schema: Schema) -> _Plan:
        plan = self._plans.get(id(schema))
        if plan is None or plan.schema is not schema:
            plan = self._plans[id(schema)] = _Plan(self, schema)
        return plan

    def prune(self, value: Any, schema: Schema, keep: Any = None) -> None:
        """Drop, in place, what the server's encoding would leave out (`keep`: a part known to
        be pruned already, left as it is)."""
        self._prune(value, self._plan(self.resolve(schema)), keep)

    def _prune(self, value: Any, plan: _Plan, keep: Any) -> None:
        if isinstance(value, dict):
            fields = plan.fields
            if fields:
                dropped: list[Any] = []
                for key, item in value.items():
                    field = fields.get(key)
                    if field is None:
                        continue
                    if keep is not None and item is keep:
                        continue
                    if field[1] and (item is None or (not item and type(item) in field[2])):
                        dropped.append(key)
                    elif isinstance(item, dict | list):
                        plan_of = field[3]
                        if plan_of is None:
                            plan_of = field[3] = self._plan(field[0])
                        self._prune(item, plan_of, keep)
                for key in dropped:
                    del value[key]
            elif plan.additional is not None:
                additional = self._plan(plan.additional)
                for item in value.values():
                    if isinstance(item, dict | list):
                        self._prune(item, additional, None)
        elif isinstance(value, list) and plan.items is not None:
            items = self._plan(plan.items)
            for item in value:
                if isinstance(item, dict | list):
                    self._prune(item, items, keep)


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
