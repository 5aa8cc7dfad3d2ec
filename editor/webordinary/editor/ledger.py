"""What this environment spent on the model, per calendar month (UTC), kept on the volume.

The editor is the only writer (one pod per environment). A failed write is counted and logged,
never allowed to hold back a command's answer.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from webordinary.contracts.messages import Usage
from webordinary.editor import metrics

log = logging.getLogger(__name__)


def month_of(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m")


def next_month(when: datetime) -> str:
    """'1 December 2026': when a monthly budget starts again."""
    year, month = when.year + (when.month == 12), when.month % 12 + 1
    return datetime(year, month, 1, tzinfo=UTC).strftime("1 %B %Y")


def over_budget(spent: float, budget: float | None) -> bool:
    return budget is not None and spent >= budget


def budget_message(spent: float, budget: float, when: datetime) -> str:
    """The customer-facing reason a new request was not started."""
    return (f"this site's editing budget for {when.astimezone(UTC).strftime('%B %Y')} "
            f"(US${budget:,.2f}) is used up (US${spent:,.2f} spent), so we did not start on "
            f"it. Editing resumes on {next_month(when)}, or sooner if your administrator "
            "raises the budget")


class Ledger:
    """Month -> {costUsd, inputTokens, outputTokens, runs} in one small JSON file."""

    def __init__(self, path: Path, environment: str,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.path = path
        self.environment = environment
        self.clock = clock
        self._months: dict[str, dict[str, float]] = self._load()

    def _load(self) -> dict[str, dict[str, float]]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.error("usage ledger %s unreadable (%s); counting from zero", self.path, exc)
            return {}
        return {str(k): {str(f): float(v) for f, v in dict(m).items()}
                for k, m in dict(raw).items()}

    def spent(self) -> float:
        return self._months.get(month_of(self.clock()), {}).get("costUsd", 0.0)

    def record(self, usage: Usage) -> None:
        """Add one agent run's usage (memory first, then the file; metrics either way)."""
        month = self._months.setdefault(month_of(self.clock()), {})
        for key, value in (("costUsd", usage.cost_usd or 0.0),
                           ("inputTokens", usage.input_tokens),
                           ("outputTokens", usage.output_tokens), ("runs", 1)):
            month[key] = month.get(key, 0.0) + float(value)
        metrics.TOKENS.labels(self.environment, "input").inc(usage.input_tokens)
        metrics.TOKENS.labels(self.environment, "output").inc(usage.output_tokens)
        metrics.COST_USD.labels(self.environment).inc(usage.cost_usd or 0.0)
        metrics.MONTH_COST_USD.labels(self.environment).set(month["costUsd"])
        try:
            self._save()
        except OSError as exc:
            metrics.LOCAL_WRITE_ERRORS.labels("ledger").inc()
            log.error("could not write the usage ledger (%s); kept in memory", exc)

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".ledger-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(self._months, handle, sort_keys=True)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
