"""Kubernetes-style durations (`20m`, `1h30m`, `45s`) used by spec fields."""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION = re.compile(r"^(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?$")
DURATION_PATTERN = r"^([0-9]+h)?([0-9]+m)?([0-9]+s)?$"


def parse_duration(value: str) -> timedelta:
    """Parse `1h30m`-style text; raise ValueError naming the bad value."""
    match = _DURATION.match(value.strip())
    if not value.strip() or match is None:
        raise ValueError(f"invalid duration {value!r}: expected e.g. '20m', '1h30m', '45s'")
    hours, minutes, seconds = (int(match.group(g) or 0) for g in ("h", "m", "s"))
    return timedelta(hours=hours, minutes=minutes, seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """Inverse of parse_duration for whole seconds."""
    total = int(delta.total_seconds())
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    text += f"{seconds}s" if seconds or not text else ""
    return text
