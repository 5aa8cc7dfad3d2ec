"""The editor killed at every step (receive, agent run, commit, push, result send) and
restarted: every command still gets exactly one answer, no completed edit is lost, and no
agent runs more often than the kills make necessary. The full 200-command run is
`./dev bench editor_faults`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.editor.faults import PHASES, run_faults
from webordinary.devkit.aws import MotoServer
from webordinary.devkit.messages_api import MessagesAPI


@pytest.mark.slow
def test_kills_at_every_step_lose_nothing_and_answer_once(
        tmp_path: Path, moto: MotoServer, messages_api: MessagesAPI) -> None:
    report = run_faults(tmp_path, moto, messages_api, lanes=2, per_lane=5, share=0.6, seed=11)
    print("\n".join(report.lines()))
    assert set(report.kills) == set(PHASES), report.lines()
    assert report.ok, report.lines()
