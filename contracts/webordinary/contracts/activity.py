"""Wake requests and activity stamps on an EditEnvironment: what Hermes and the gateway write.

Both are annotations (they must not bump metadata.generation) holding an RFC 3339 time:
- `webordinary.dev/wake-requested-at`: "start the editor now" (a follow-up email, a preview
  request on a sleeping environment, an SRE). It also counts as activity.
- `webordinary.dev/last-activity`: "someone used this environment at that time" (an accepted
  command, a relayed result, a preview request). The operator puts the editor to sleep at the
  latest activity + spec.idleTimeout.

Writers send the merge patches built here (no read first, no resourceVersion: the last writer
wins and every value is a time, so a lost race costs nothing). Activity is cheap but not free,
so writers pass it through an `ActivityLimiter`: at most one write per environment per interval,
and the newest suppressed time is written when the interval ends, so no activity is lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from webordinary.contracts.environment import ANNOTATION_ACTIVITY, ANNOTATION_WAKE

__all__ = [
    "ANNOTATION_ACTIVITY",
    "ANNOTATION_WAKE",
    "DEFAULT_INTERVAL_SECONDS",
    "ActivityLimiter",
    "activity_patch",
    "format_timestamp",
    "parse_timestamp",
    "wake_patch",
]

DEFAULT_INTERVAL_SECONDS: Final = 30.0


def format_timestamp(at: datetime) -> str:
    """RFC 3339 in UTC with a `Z`; milliseconds only when the time has a fraction."""
    if at.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    utc = at.astimezone(UTC)
    spec = "milliseconds" if utc.microsecond else "seconds"
    return utc.isoformat(timespec=spec).replace("+00:00", "Z")


def parse_timestamp(value: str | None) -> datetime | None:
    """The time in an annotation; None when absent, unreadable or without a zone (no crash)."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def wake_patch(at: datetime) -> dict[str, Any]:
    """Merge patch asking the operator to start the editor (a wake counts as activity)."""
    return {"metadata": {"annotations": {ANNOTATION_WAKE: format_timestamp(at)}}}


def activity_patch(at: datetime) -> dict[str, Any]:
    """Merge patch recording that the environment was used at `at`."""
    return {"metadata": {"annotations": {ANNOTATION_ACTIVITY: format_timestamp(at)}}}


@dataclass
class _Window:
    opened: float  # monotonic time of the last write
    pending: datetime | None = None  # newest activity not yet written


class ActivityLimiter:
    """At most one activity write per key (e.g. `namespace/name`) per `interval` seconds.

    Pure and single-threaded: the caller passes its monotonic clock and does the writing.
    `offer` says whether to write now; what it held back comes out of `due` once the interval
    has passed (call it every few seconds), so the last activity is never dropped, only late
    by at most `interval`.
    """

    def __init__(self, interval: float = DEFAULT_INTERVAL_SECONDS) -> None:
        if interval < 0:
            raise ValueError("interval must not be negative")
        self.interval = interval
        self._windows: dict[str, _Window] = {}

    def offer(self, key: str, at: datetime, now: float) -> datetime | None:
        """The time to write now, or None when a write for `key` happened within the interval
        (then `at` is kept for `due`)."""
        window = self._windows.get(key)
        if window is None or now - window.opened >= self.interval:
            self._windows[key] = _Window(opened=now)
            return at
        if window.pending is None or at > window.pending:
            window.pending = at
        return None

    def due(self, now: float) -> list[tuple[str, datetime]]:
        """Held-back times whose interval has ended (each counts as a write now); windows that
        ended with nothing held back are forgotten, so memory stays bounded by busy keys."""
        out: list[tuple[str, datetime]] = []
        for key, window in list(self._windows.items()):
            if now - window.opened < self.interval:
                continue
            if window.pending is None:
                del self._windows[key]
                continue
            out.append((key, window.pending))
            self._windows[key] = _Window(opened=now)
        return out

    def __len__(self) -> int:
        return len(self._windows)
