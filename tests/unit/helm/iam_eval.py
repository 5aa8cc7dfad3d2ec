"""A small evaluator of IAM identity policies: enough of AWS's rules to test ours.

Effect Allow/Deny (an explicit Deny wins, nothing allowed means denied), Action and Resource
with `*`/`?` wildcards (actions case-insensitive), policy variables `${...}` in Resource and
condition values (an unresolved variable never matches), and the condition operators our
documents use: StringEquals, StringLike, ArnEquals, ArnLike. Any other operator raises, so a
policy cannot quietly use something this evaluator would get wrong.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

VARIABLE = re.compile(r"\$\{([^}]+)\}")
PLACEHOLDER = re.compile(r"\{\{([A-Z_]+)\}\}")


class Unresolved(Exception):
    """A policy variable without a value in the request context."""


@dataclass(frozen=True)
class Request:
    action: str
    resource: str
    context: Mapping[str, str] = field(default_factory=dict)  # aws:PrincipalTag/x, ...


def load(path: Path, placeholders: Mapping[str, str]) -> dict[str, Any]:
    """A policy document with its {{PLACEHOLDERS}} filled in (all of them must be given)."""
    text = path.read_text()
    missing = set(PLACEHOLDER.findall(text)) - set(placeholders)
    if missing:
        raise KeyError(f"{path.name}: no value for {sorted(missing)}")
    document: dict[str, Any] = json.loads(
        PLACEHOLDER.sub(lambda m: placeholders[m.group(1)], text))
    return document


def _list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _substitute(value: str, context: Mapping[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in context:
            raise Unresolved(key)
        return context[key]

    return VARIABLE.sub(one, value)


def _like(pattern: str, value: str) -> bool:
    return fnmatch.fnmatchcase(value, pattern.replace("[", "[[]"))


def _condition(operator: str, key: str, wanted: list[str], context: Mapping[str, str]) -> bool:
    if key not in context:
        return False
    have = context[key]
    try:
        values = [_substitute(w, context) for w in wanted]
    except Unresolved:
        return False
    if operator in ("StringEquals", "ArnEquals"):
        return have in values
    if operator in ("StringLike", "ArnLike"):
        return any(_like(v, have) for v in values)
    raise NotImplementedError(f"condition operator {operator} is not evaluated here")


def matches(statement: Mapping[str, Any], request: Request) -> bool:
    if not any(_like(a.lower(), request.action.lower()) for a in _list(statement["Action"])):
        return False
    try:
        resources = [_substitute(r, request.context) for r in _list(statement["Resource"])]
    except Unresolved:
        return False
    if not any(_like(r, request.resource) for r in resources):
        return False
    for operator, keys in statement.get("Condition", {}).items():
        for key, wanted in keys.items():
            if not _condition(operator, key, _list(wanted), request.context):
                return False
    return True


def allowed(policy: Mapping[str, Any], request: Request) -> bool:
    hits = [s["Effect"] for s in policy["Statement"] if matches(s, request)]
    return "Allow" in hits and "Deny" not in hits


def actions(policy: Mapping[str, Any]) -> set[str]:
    """Every action an Allow statement names (no wildcards expected in ours)."""
    return {a for s in policy["Statement"] if s["Effect"] == "Allow" for a in _list(s["Action"])}
