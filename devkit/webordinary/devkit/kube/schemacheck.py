"""A small compiled validator for the schema subset Kubernetes uses (OpenAPI structural
schemas and the official JSON schemas of built-ins), ~10x faster than jsonschema here.

Each schema is compiled once into nested closures; `$ref`s resolve lazily (recursive
definitions work). Errors are (field path, message) pairs in the API server's wording.
Keywords: type (incl. "null" and lists), nullable, enum, pattern, minimum/maximum (+ the
OpenAPI boolean exclusive forms), multipleOf, minLength/maxLength, minItems/maxItems,
uniqueItems, minProperties/maxProperties, required, properties, additionalProperties,
items, allOf/anyOf/oneOf/not, x-kubernetes-int-or-string, $ref; in CRD schemas `format`
date-time and date (other formats are not checked).
"""

from __future__ import annotations

import datetime
import json
import re
import threading
import weakref
from collections.abc import Callable
from functools import lru_cache
from typing import Any

Cause = tuple[str, str]
Path = tuple[Any, ...]
Check = Callable[[Any, Path, list[Cause]], None]

_PY_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,), "array": (list,), "string": (str,), "boolean": (bool,),
    "integer": (int,), "number": (int, float), "null": (type(None),),
}


def render_path(path: Path) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return '"object"'
    if isinstance(value, list):
        return '"array"'
    return json.dumps(value)[:120]


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "string" if isinstance(value, str) else "unknown"


def _matches_type(value: Any, names: tuple[str, ...]) -> bool:
    for name in names:
        if name == "null":
            if value is None:
                return True
        elif isinstance(value, _PY_TYPES[name]) and not (
            isinstance(value, bool) and name in ("integer", "number")
        ):
            return True
    return False


class Compiler:
    """Compiles schemas; `definitions` serve `$ref`s (last path segment is the name)."""

    def __init__(self, definitions: dict[str, Any] | None = None, *, crd: bool = False) -> None:
        self.definitions = definitions or {}
        self.crd = crd
        self._refs: dict[str, Check] = {}
        self._pending: dict[str, Check] = {}
        self._lock = threading.RLock()

    def ref(self, name: str) -> Check:
        existing = self._refs.get(name)
        if existing is not None:
            return existing
        # emulators in several threads share the cached built-in compiler: compile under a
        # (re-entrant) lock; placeholders for recursive references stay private to it
        with self._lock:
            existing = self._refs.get(name) or self._pending.get(name)
            if existing is not None:
                return existing
            slot: list[Check] = []

            def deferred(value: Any, path: Path, out: list[Cause]) -> None:
                slot[0](value, path, out)

            self._pending[name] = deferred
            compiled = self.compile(self.definitions[name])
            slot.append(compiled)
            self._refs[name] = compiled
            del self._pending[name]
            return compiled

    def compile(self, schema: dict[str, Any]) -> Check:
        """One closure per schema: its `$ref` first, then its type (a mismatch ends the
        schema's checks there), then the other keywords in order."""
        before: list[Check] = []
        if "$ref" in schema:
            name = str(schema["$ref"]).rsplit("/", 1)[-1]
            before.append(self._lazy_ref(name))
        nullable = bool(schema.get("nullable"))
        int_or_string = bool(schema.get("x-kubernetes-int-or-string"))
        raw_type = schema.get("type")
        types: tuple[str, ...] = ()
        if int_or_string:
            types = ("integer", "string")
        elif isinstance(raw_type, str):
            types = (raw_type,)
        elif isinstance(raw_type, list):
            types = tuple(raw_type)
        if nullable and types:
            types = (*types, "null")
        crd = self.crd
        checks: list[Check] = []

        if "enum" in schema:
            allowed = list(schema["enum"])
            shown = ", ".join(json.dumps(v) for v in allowed if v is not None)

            def check_enum(value: Any, path: Path, out: list[Cause]) -> None:
                if value not in allowed and not (value is None and nullable):
                    out.append((render_path(path), f"Unsupported value: {_show(value)}: "
                                                   f"supported values: {shown}"))

            checks.append(check_enum)

        checks += self._string_checks(schema)
        checks += self._number_checks(schema)
        checks += self._collection_checks(schema)
        checks += self._combinator_checks(schema)

        if not types:
            return _sequence([*before, *checks])
        wanted = " or ".join(t for t in types if t != "null")
        exact = frozenset(t for name in types for t in _PY_TYPES.get(name, ()))

        def mismatch(value: Any, path: Path, out: list[Cause]) -> None:
            where = render_path(path)
            if crd:
                out.append((where, f'Invalid value: "{_type_name(value)}": {where} in body '
                                   f'must be of type {wanted}: "{_type_name(value)}"'))
            else:
                out.append((where, f"Invalid value: {_show(value)}: must be of type {wanted}"))

        if before or len(checks) > 1:
            first = _sequence(before)
            rest = _sequence(checks)

            def typed(value: Any, path: Path, out: list[Cause]) -> None:
                first(value, path, out)
                if type(value) not in exact and not _matches_type(value, types):
                    mismatch(value, path, out)
                else:
                    rest(value, path, out)

            return typed
        if checks:
            only = checks[0]

            def typed_one(value: Any, path: Path, out: list[Cause]) -> None:
                if type(value) not in exact and not _matches_type(value, types):
                    mismatch(value, path, out)
                else:
                    only(value, path, out)

            return typed_one

        def typed_leaf(value: Any, path: Path, out: list[Cause]) -> None:
            if type(value) not in exact and not _matches_type(value, types):
                mismatch(value, path, out)

        _ACCEPTS[typed_leaf] = exact
        return typed_leaf

    def _lazy_ref(self, name: str) -> Check:
        compiled: Check | None = None

        def check_ref(value: Any, path: Path, out: list[Cause]) -> None:
            nonlocal compiled
            if compiled is None:
                compiled = self.ref(name)
            compiled(value, path, out)

        return check_ref

    def _string_checks(self, schema: dict[str, Any]) -> list[Check]:
        checks: list[Check] = []
        crd = self.crd
        fmt = schema.get("format")
        if crd and fmt in _FORMATS:
            valid = _FORMATS[fmt]

            def check_format(value: Any, path: Path, out: list[Cause]) -> None:
                if isinstance(value, str) and not valid(value):
                    where = render_path(path)
                    out.append((where, f"Invalid value: {_show(value)}: {where} in body must "
                                       f"be of type {fmt}: {_show(value)}"))

            checks.append(check_format)
        if "pattern" in schema:
            source = str(schema["pattern"])
            regex = re.compile(source)

            def check_pattern(value: Any, path: Path, out: list[Cause]) -> None:
                if isinstance(value, str) and not regex.search(value):
                    where = render_path(path)
                    out.append((where, f"Invalid value: {_show(value)}: {where} in body should "
                                       f"match '{source}'" if crd else
                                       f"Invalid value: {_show(value)}: must match '{source}'"))

            checks.append(check_pattern)
        if "minLength" in schema or "maxLength" in schema:
            low, high = schema.get("minLength"), schema.get("maxLength")

            def check_length(value: Any, path: Path, out: list[Cause]) -> None:
                if isinstance(value, str):
                    if high is not None and len(value) > high:
                        out.append((render_path(path), f"Too long: may not be more than {high} "
                                                       "bytes"))
                    if low is not None and len(value) < low:
                        where = render_path(path)
                        out.append((where, f"Invalid value: {_show(value)}: {where} in body "
                                           f"should be at least {low} chars long"))

            checks.append(check_length)
        return checks

    def _number_checks(self, schema: dict[str, Any]) -> list[Check]:
        keys = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
        if not any(k in schema for k in keys):
            return []
        low, high = schema.get("minimum"), schema.get("maximum")
        ex_low, ex_high = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
        if isinstance(ex_low, bool):
            ex_low = low if ex_low else None
            low = None if ex_low is not None else low
        if isinstance(ex_high, bool):
            ex_high = high if ex_high else None
            high = None if ex_high is not None else high
        multiple = schema.get("multipleOf")

        def check_number(value: Any, path: Path, out: list[Cause]) -> None:
            if isinstance(value, bool) or not isinstance(value, int | float):
                return
            if not ((low is not None and value < low) or (ex_low is not None and value <= ex_low)
                    or (high is not None and value > high)
                    or (ex_high is not None and value >= ex_high)
                    or (multiple and (value / multiple) != int(value / multiple))):
                return
            where = render_path(path)
            prefix = f"Invalid value: {_show(value)}: {where} in body should be"
            if low is not None and value < low:
                out.append((where, f"{prefix} greater than or equal to {low}"))
            if ex_low is not None and value <= ex_low:
                out.append((where, f"{prefix} greater than {ex_low}"))
            if high is not None and value > high:
                out.append((where, f"{prefix} less than or equal to {high}"))
            if ex_high is not None and value >= ex_high:
                out.append((where, f"{prefix} less than {ex_high}"))
            if multiple and (value / multiple) != int(value / multiple):
                out.append((where, f"{prefix} a multiple of {multiple}"))

        return [check_number]

    def _collection_checks(self, schema: dict[str, Any]) -> list[Check]:
        checks: list[Check] = []
        properties = {k: self.compile(v) for k, v in (schema.get("properties") or {}).items()}
        additional = schema.get("additionalProperties")
        additional_check = self.compile(additional) if isinstance(additional, dict) else None
        closed = additional is False
        required = list(schema.get("required") or [])
        min_props, max_props = schema.get("minProperties"), schema.get("maxProperties")
        if properties or additional_check or closed or required or min_props or max_props:

            def check_object(value: Any, path: Path, out: list[Cause]) -> None:
                if not isinstance(value, dict):
                    return
                for key in required:
                    if key not in value:
                        out.append((render_path((*path, key)), "Required value"))
                for key, item in value.items():
                    check = properties.get(key)
                    if check is not None:
                        check(item, (*path, key), out)
                    elif additional_check is not None:
                        additional_check(item, (*path, key), out)
                    elif closed:
                        out.append((render_path((*path, key)), f'unknown field "{key}"'))
                if max_props is not None and len(value) > max_props:
                    out.append((render_path(path), f"Too many: {len(value)}: must have at most "
                                                   f"{max_props} items"))
                if min_props is not None and len(value) < min_props:
                    out.append((render_path(path), f"Invalid value: must have at least "
                                                   f"{min_props} properties"))

            checks.append(check_object)
        items = schema.get("items")
        item_check = self.compile(items) if isinstance(items, dict) else None
        min_items, max_items = schema.get("minItems"), schema.get("maxItems")
        unique = bool(schema.get("uniqueItems")) or schema.get("x-kubernetes-list-type") == "set"
        map_keys = list(schema.get("x-kubernetes-list-map-keys") or []) if schema.get(
            "x-kubernetes-list-type") == "map" else []
        one_key = map_keys[0] if len(map_keys) == 1 else None
        if item_check or min_items is not None or max_items is not None or unique or map_keys:

            def check_array(value: Any, path: Path, out: list[Cause]) -> None:
                if not isinstance(value, list):
                    return
                if item_check is not None:
                    for index, item in enumerate(value):
                        item_check(item, (*path, index), out)
                where = render_path(path) if max_items is not None or min_items is not None else ""
                if max_items is not None and len(value) > max_items:
                    out.append((where, f"Too many: {len(value)}: must have at most {max_items} "
                                       "items"))
                if min_items is not None and len(value) < min_items:
                    out.append((where, f"Invalid value: {len(value)}: {where} in body should "
                                       f"have at least {min_items} items"))
                if map_keys:
                    keys_seen: set[Any] = set()
                    for index, item in enumerate(value):
                        if not isinstance(item, dict):
                            continue
                        if one_key is not None:
                            single = item.get(one_key)
                            identity = ((type(single), single) if type(single) in _SCALARS
                                        else json.dumps([single]))
                        else:
                            identity = _identity([item.get(k) for k in map_keys])
                        if identity in keys_seen:
                            shown = ", ".join(f"{k}={json.dumps(item.get(k))}" for k in map_keys)
                            out.append((render_path((*path, index)),
                                        f"Duplicate value: map[{shown}]"))
                        keys_seen.add(identity)
                if unique:
                    seen: list[Any] = []
                    for index, item in enumerate(value):
                        if item in seen:
                            out.append((render_path((*path, index)),
                                        f"Duplicate value: {_show(item)}"))
                        seen.append(item)

            checks.append(check_array)
        return checks

    def _combinator_checks(self, schema: dict[str, Any]) -> list[Check]:
        checks: list[Check] = []
        for keyword in ("allOf", "anyOf", "oneOf"):
            if keyword not in schema:
                continue
            branches = [self.compile(branch) for branch in schema[keyword]]
            checks.append(_combinator(keyword, branches))
        if isinstance(schema.get("not"), dict):
            negated = self.compile(schema["not"])

            def check_not(value: Any, path: Path, out: list[Cause]) -> None:
                errors: list[Cause] = []
                negated(value, path, errors)
                if not errors:
                    out.append((render_path(path), "Invalid value: must not validate the schema "
                                                   "(not)"))

            checks.append(check_not)
        return checks


_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_DATE_TIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?"
    r"(?:[Zz]|[+-]\d{2}:?\d{2})?$")


def _valid_date(year: str, month: str, day: str) -> bool:
    try:
        datetime.date(int(year), int(month), int(day))
    except ValueError:
        return False
    return True


@lru_cache(maxsize=4096)
def _is_date(value: str) -> bool:
    match = _DATE.match(value)
    return match is not None and _valid_date(*match.groups())


@lru_cache(maxsize=4096)
def _is_date_time(value: str) -> bool:
    """The layouts kube-openapi's strfmt accepts: RFC 3339 with any fraction, offsets with or
    without a colon, a space for the T, reduced precision, local time."""
    match = _DATE_TIME.match(value)
    if not match:
        return False
    year, month, day, hour, minute, second = match.groups()
    return _valid_date(year, month, day) and int(hour) < 24 and int(minute) < 60 and (
        second is None or int(second) < 61)


_FORMATS: dict[str, Callable[[str], bool]] = {"date-time": _is_date_time, "date": _is_date}


_SCALARS = frozenset({str, int, bool, type(None)})


def _identity(values: list[Any]) -> Any:
    """A list-map item's key: equal exactly when the values' JSON is (strings, integers,
    booleans and nulls by type and value; anything else by its JSON)."""
    if all(type(v) in _SCALARS for v in values):
        return tuple((type(v), v) for v in values)
    return json.dumps(values)


def _accept(value: Any, path: Path, out: list[Cause]) -> None:
    return None


# The types a JSON document's values have, and for checks that only test a value's type, the
# ones they accept: a value of one of these types passes such a check exactly when its type is
# in the set (`_matches_type` agrees for them; other types take the full evaluation).
_JSON_TYPES: frozenset[type] = frozenset({dict, list, str, bool, int, float, type(None)})
_ACCEPTS: weakref.WeakKeyDictionary[Check, frozenset[type]] = weakref.WeakKeyDictionary()
_ACCEPTS[_accept] = _JSON_TYPES


def _sequence(checks: list[Check]) -> Check:
    """The checks one after the other (one check: itself)."""
    if not checks:
        return _accept
    if len(checks) == 1:
        return checks[0]

    def run_all(value: Any, path: Path, out: list[Cause]) -> None:
        for check in checks:
            check(value, path, out)

    return run_all


def _fewest(results: list[list[Cause]]) -> list[Cause]:
    best = results[0]
    for errors in results[1:]:
        if len(errors) < len(best):
            best = errors
    return best


def _combinator(keyword: str, branches: list[Check]) -> Check:
    # Branches that only check a type answer "passes?" without building the causes they
    # would report (int-or-string fields are a oneOf of two types: every value fails one
    # branch, whose message was rendered and dropped). The causes are collected only when
    # the combinator fails.
    accepts = [_ACCEPTS.get(branch) for branch in branches]
    passing: dict[type, bool] = {}  # per JSON type: whether the combinator passes
    if all(accepts):
        for kind in _JSON_TYPES:
            count = sum(1 for accepted in accepts if accepted is not None and kind in accepted)
            passing[kind] = (count == len(branches) if keyword == "allOf" else
                             count > 0 if keyword == "anyOf" else count == 1)

    def check(value: Any, path: Path, out: list[Cause]) -> None:
        if passing.get(type(value)):
            return
        results: list[list[Cause]] = []
        for branch in branches:
            errors: list[Cause] = []
            branch(value, path, errors)
            results.append(errors)
        passed = sum(1 for errors in results if not errors)
        if keyword == "allOf":
            for errors in results:
                out.extend(errors)
        elif keyword == "anyOf" and passed == 0:
            out.extend(_fewest(results))
        elif keyword == "oneOf" and passed != 1:
            if passed == 0:
                out.extend(_fewest(results))
            else:
                out.append((render_path(path), "Invalid value: must match exactly one schema "
                                               "(oneOf)"))

    return check
