"""The usage ledger: per-month totals on the volume, metrics per environment, never fatal."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import REGISTRY

from webordinary.contracts.messages import Usage
from webordinary.editor.ledger import Ledger, budget_message, next_month, over_budget


def test_usage_adds_up_per_month_and_survives_a_restart(tmp_path: Path) -> None:
    now = [datetime(2026, 11, 28, 12, tzinfo=UTC)]
    path = tmp_path / ".usage" / "ledger.json"
    before = REGISTRY.get_sample_value("webordinary_editor_cost_usd_total",
                                       {"environment": "env-ledger"}) or 0.0
    ledger = Ledger(path, "env-ledger", clock=lambda: now[0])
    ledger.record(Usage(input_tokens=10, output_tokens=2, cost_usd=0.25))
    ledger.record(Usage(input_tokens=5, output_tokens=1, cost_usd=0.5))
    assert ledger.spent() == 0.75
    again = Ledger(path, "env-ledger", clock=lambda: now[0])
    assert again.spent() == 0.75
    now[0] = datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC)
    assert again.spent() == 0.0
    assert REGISTRY.get_sample_value("webordinary_editor_cost_usd_total",
                                     {"environment": "env-ledger"}) == before + 0.75
    assert REGISTRY.get_sample_value("webordinary_editor_tokens_total",
                                     {"environment": "env-ledger", "direction": "input"}) == 15


def test_an_unwritable_ledger_keeps_counting_in_memory(tmp_path: Path) -> None:
    (tmp_path / "blocked").write_text("a file where the folder should be")
    ledger = Ledger(tmp_path / "blocked" / "ledger.json", "env-blocked")
    ledger.record(Usage(cost_usd=1.0))
    assert ledger.spent() == 1.0


def test_a_damaged_ledger_counts_from_zero(tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    path.write_text("{half")
    assert Ledger(path, "env-damaged").spent() == 0.0


def test_budget_rules_and_wording() -> None:
    assert not over_budget(10.0, None)
    assert not over_budget(4.99, 5.0)
    assert over_budget(5.0, 5.0)
    assert over_budget(0.0, 0.0)  # a zero budget stops all edits
    assert next_month(datetime(2026, 12, 31, tzinfo=UTC)) == "1 January 2027"
    message = budget_message(5.5, 5.0, datetime(2026, 11, 3, tzinfo=UTC))
    assert message == ("this site's editing budget for November 2026 (US$5.00) is used up "
                       "(US$5.50 spent), so we did not start on it. Editing resumes on "
                       "1 December 2026, or sooner if your administrator raises the budget")
