"""JSON-shaped data helpers."""

from __future__ import annotations


def clone[T](value: T) -> T:
    """A deep copy of JSON-shaped data (dicts, lists, scalars), ~4x faster than deepcopy."""
    if isinstance(value, dict):
        return {key: clone(item) for key, item in value.items()}  # type: ignore[return-value]
    if isinstance(value, list):
        return [clone(item) for item in value]  # type: ignore[return-value]
    return value
