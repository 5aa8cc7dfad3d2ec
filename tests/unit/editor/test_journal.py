"""The command journal: atomic, keyed by command id, tolerant of damage."""

from __future__ import annotations

from pathlib import Path

from webordinary.contracts.messages import Result, ResultStatus
from webordinary.editor.journal import Journal


def test_put_then_get_round_trips_and_survives_a_new_instance(tmp_path: Path) -> None:
    result = Result(command_id="c:1/../x", session_id="x", status=ResultStatus.COMPLETED,
                    summary="done", files_changed=["a"])
    Journal(tmp_path).put(result)
    again = Journal(tmp_path).get("c:1/../x")
    assert again == result
    assert Journal(tmp_path).get("other") is None
    assert [p.parent for p in tmp_path.iterdir()] == [tmp_path]
    assert not list(tmp_path.glob(".tmp-*"))


def test_a_damaged_entry_counts_as_unanswered(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.path("c-1").write_text("{half")
    assert journal.get("c-1") is None
