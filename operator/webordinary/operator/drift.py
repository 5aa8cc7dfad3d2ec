"""Does a live child still match what the operator wants? Compared in the form the API server
stores, so an unchanged child is never patched again (no write loop on a real cluster).

A real API server drops empty optional fields of built-ins (`env[].value: ""`, `args: []`,
`annotations: {}`, a NetworkPolicy `ingress: []`) and stores resource quantities canonically
(`cpu: "0.5"` -> "500m", "1024Mi" -> "1Gi"). So: an empty (or null) desired value matches an
absent or empty live one, and quantities compare by value. Fields the server adds (defaults,
clusterIP, status) are not drift: only what the operator wants is compared.
"""

from __future__ import annotations

from typing import Any

from webordinary.contracts.specpolicy import parse_quantity

_QUANTITY_MAPS = ("requests", "limits")


def is_empty(value: Any) -> bool:
    """What the server's encoding leaves out of an optional field: null, "", [], {}."""
    return value is None or (isinstance(value, str | list | dict) and len(value) == 0)


def same_quantity(desired: Any, live: Any) -> bool:
    """Equal as quantities ("0.5" == "500m", "1024Mi" == "1Gi"); else equal as values."""
    if desired == live and type(desired) is type(live):
        return True
    if isinstance(desired, bool) or isinstance(live, bool):
        return False
    try:
        return parse_quantity(str(desired)) == parse_quantity(str(live))
    except ValueError:
        return False


def in_sync(desired: Any, live: Any, *, parent: str = "") -> bool:
    """True when every field of `desired` is in `live` as the server would store it.

    Dicts: each desired key must match (extra live keys are the server's); an empty desired
    value matches an absent or empty live one. Lists: element by element, same length.
    Values of `resources.requests` / `resources.limits` compare as quantities.
    """
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            return is_empty(desired) and is_empty(live)
        quantities = parent == "resources"
        for key, value in desired.items():
            current = live.get(key)
            if is_empty(current) and is_empty(value):
                continue
            if key not in live:
                return False
            if quantities and key in _QUANTITY_MAPS and isinstance(value, dict):
                if not isinstance(current, dict) or not _same_quantities(value, current):
                    return False
            elif not in_sync(value, current, parent=key):
                return False
        return True
    if isinstance(desired, list):
        if not isinstance(live, list):
            return is_empty(desired) and is_empty(live)
        return len(desired) == len(live) and all(
            in_sync(d, o) for d, o in zip(desired, live, strict=True))
    return bool(desired == live) and type(desired) is type(live)


def _same_quantities(desired: dict[str, Any], live: dict[str, Any]) -> bool:
    return all(name in live and same_quantity(value, live[name])
               for name, value in desired.items())
