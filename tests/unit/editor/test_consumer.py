"""The consumer and the handlers over fakes at their ports (no subprocess, no network)."""

from __future__ import annotations

import asyncio
import errno
from pathlib import Path

from prometheus_client import REGISTRY

from tests.unit.editor.fakes import Rig, Turn, body
from webordinary.contracts.messages import Push, PushState, ResultStatus, Usage
from webordinary.editor.agent import Ending


async def test_an_edit_is_run_committed_answered_and_acknowledged(tmp_path: Path) -> None:
    rig = Rig(tmp_path, [Turn(writes={"a.md": "A"}, summary="Added page A.")])
    async with rig:
        sent = rig.send(body("x", "c-1", "Add page A"))
        [result] = await rig.results(1)
    assert result.status is ResultStatus.COMPLETED
    assert result.summary == "Added page A."
    assert result.files_changed == ["a.md"]
    assert result.usage.input_tokens == 100
    assert result.usage.cost_usd == 0.01
    assert result.commit == rig.git.commits["thread-x"][-1][0]
    assert rig.git.messages("x")[0].startswith("Add page A")
    assert rig.queues.deleted == [sent.receipt]
    assert rig.journal.get("c-1") == result
    assert rig.previews.shown == ["x"]
    assert rig.agent.prompts == ["Add page A"]


async def test_a_new_command_interrupts_the_running_one(tmp_path: Path) -> None:
    rig = Rig(tmp_path, [Turn(writes={"draft.md": "half"}, stall=True, said="Let me look"),
                         Turn(summary="Footer is blue.")])
    async with rig:
        rig.send(body("x", "slow", "Write a draft"))
        await rig.until(rig.agent.started.is_set)
        rig.send(body("y", "fast", "Make the footer blue"))
        first, second = await rig.results(2)
    assert (first.command_id, first.status) == ("slow", ResultStatus.INTERRUPTED)
    assert first.files_changed == ["draft.md"]
    assert "Let me look" not in first.summary
    assert first.commit is not None
    assert f"work-in-progress commit {first.commit[:12]}" in first.summary
    assert rig.git.messages("x")[0].startswith("WIP (interrupted): Write a draft")
    assert (second.command_id, second.status) == ("fast", ResultStatus.COMPLETED)


async def test_a_duplicate_of_the_running_command_is_adopted_not_rerun(tmp_path: Path) -> None:
    rig = Rig(tmp_path, [Turn(stall=True)])
    async with rig:
        first = rig.send(body("x", "c-1"))
        await rig.until(rig.agent.started.is_set)
        twin = rig.send(body("x", "c-1"))
        await rig.until(lambda: rig.consumer.current is not None
                        and bool(rig.consumer.current.twins))
        rig.agent.interrupt(Ending.COMPLETED)
        await rig.results(1)
        await rig.until(lambda: twin.receipt in rig.queues.deleted)
    assert len(rig.queues.sent) == 1
    assert len(rig.agent.prompts) == 1
    assert first.receipt in rig.queues.deleted


async def test_a_redelivered_answered_command_is_replayed_from_the_journal(
        tmp_path: Path) -> None:
    rig = Rig(tmp_path, [Turn(summary="Once.")])
    async with rig:
        rig.send(body("x", "c-1"))
        [first] = await rig.results(1)
        rig.send(body("x", "c-1"), count=2)
        _, again = await rig.results(2)
    assert again == first
    assert len(rig.agent.prompts) == 1


async def test_a_transient_agent_failure_is_left_for_redelivery(tmp_path: Path) -> None:
    rig = Rig(tmp_path, [Turn(ending=Ending.FAILED, transient=True),
                         Turn(ending=Ending.FAILED, transient=True)])
    async with rig:
        held = rig.send(body("x", "c-1"))
        await rig.until(lambda: (held.receipt, 7) in rig.queues.extended)
        assert rig.queues.sent == []
        assert held.receipt not in rig.queues.deleted
        rig.send(body("x", "c-1"), message_id=held.message_id, count=3)
        [failed] = await rig.results(1)
    assert failed.status is ResultStatus.FAILED
    assert failed.error is not None
    assert failed.error.reason == "agent_error"


async def test_malformed_messages_are_rejected_and_not_journaled(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    async with rig:
        rig.send("not json")
        rig.send(body("../x", "bad-session"))
        results = await rig.results(2)
    assert [r.status for r in results] == [ResultStatus.REJECTED] * 2
    assert results[0].error is not None
    assert results[0].error.reason == "invalid_json"
    assert rig.journal.entries == {}
    assert rig.agent.prompts == []


async def test_commit_push_and_build_handlers(tmp_path: Path) -> None:
    rig = Rig(tmp_path, [Turn(writes={"a.md": "A"})])
    async with rig:
        rig.send(body("x", "e-1"))
        await rig.results(1)
        (tmp_path / "sessions" / "thread-x" / "notes.txt").write_text("left")
        rig.send(body("x", "c-1", "Save notes", kind="commit"))
        rig.send(body("x", "c-2", "", kind="commit"))
        rig.send(body("x", "p-1", "", kind="push"))
        rig.builds.outcome = (1, "\x1b[31merror\x1b[0m src/pages/index.astro:2\n    at x (y)\n")
        rig.send(body("x", "b-1", "", kind="build"))
        _, committed, nothing, pushed, built = await rig.results(5)
    assert committed.files_changed == ["notes.txt"]
    assert nothing.summary == "Nothing to commit."
    assert nothing.commit is None
    assert pushed.status is ResultStatus.COMPLETED
    assert rig.git.pushed == ["x", "x"]  # after the edit, and the push command
    assert built.status is ResultStatus.FAILED
    assert built.error is not None
    assert built.error.message == "error src/pages/index.astro:2"


async def test_stop_interrupts_the_running_job_as_a_shutdown(tmp_path: Path) -> None:
    rig = Rig(tmp_path, [Turn(writes={"n.md": "N"}, stall=True)])
    async with rig:
        rig.send(body("x", "c-1", "Write news"))
        await rig.until(rig.agent.started.is_set)
        rig.consumer.stop()
        [result] = await rig.results(1)
        await asyncio.sleep(0)
    assert result.status is ResultStatus.INTERRUPTED
    assert result.summary.startswith("The editor was restarted")
    assert result.commit is not None
    assert result.summary.endswith(
        f"The changes made so far are saved as work-in-progress commit {result.commit[:12]}.")
    assert rig.git.messages("x")[0].startswith("WIP (editor stopped): Write news")


async def test_an_interrupt_before_any_change_claims_no_commit(tmp_path: Path) -> None:
    rig = Rig(tmp_path, [Turn(stall=True, said="Let me look at the page."),
                         Turn(summary="Done.")])
    async with rig:
        rig.send(body("x", "slow", "Look around"))
        await rig.until(rig.agent.started.is_set)
        rig.send(body("x", "fast", "Do it"))
        first, _ = await rig.results(2)
    assert first.status is ResultStatus.INTERRUPTED
    assert first.commit is None
    assert first.summary == ("A newer message arrived, so we stopped to handle that one. "
                             "Nothing had been changed yet.")


async def test_push_after_edit_outcomes_reach_the_result(tmp_path: Path) -> None:
    rig = Rig(tmp_path, [Turn(writes={"a.md": "A"}, summary="A."),
                         Turn(writes={"b.md": "B"}, summary="B."),
                         Turn(writes={"c.md": "C"}, summary="C.")])
    rig.git.pushes = [
        Push(state=PushState.CONFLICT, branch="thread-x-conflict-1", attempts=2,
             error="thread-x in the repository has changes that conflict with this edit"),
        Push(state=PushState.FAILED, attempts=3, error="fatal: unable to access"),
    ]
    async with rig:
        rig.send(body("x", "c-1"))
        rig.send(body("x", "c-2"))
        rig.send(body("x", "c-3"))
        conflict, failed, pushed = await rig.results(3)
    assert conflict.status is ResultStatus.CONFLICT
    assert conflict.push is not None
    assert conflict.push.branch == "thread-x-conflict-1"
    assert conflict.error is not None
    assert conflict.error.reason == "push_conflict"
    assert failed.status is ResultStatus.COMPLETED
    assert failed.push is not None
    assert failed.push.state is PushState.FAILED
    assert "could not be sent to your repository yet (the repository did not accept it)" \
        in failed.summary
    assert failed.push.error == "fatal: unable to access"
    assert pushed.push == Push(state=PushState.PUSHED, branch="thread-x", attempts=1)


async def test_push_after_edit_can_be_switched_off(tmp_path: Path) -> None:
    rig = Rig(tmp_path, [Turn(writes={"a.md": "A"})], policy={"push_after_edit": False})
    async with rig:
        rig.send(body("x", "c-1"))
        [result] = await rig.results(1)
    assert result.push == Push(state=PushState.DISABLED)
    assert rig.git.pushed == []


async def test_a_redelivered_edit_that_was_committed_is_not_run_again(tmp_path: Path) -> None:
    rig = Rig(tmp_path, [Turn(writes={"a.md": "A"}, summary="Added A.")])
    rig.git.pushes = [Push(state=PushState.FAILED, error="killed")]
    async with rig:
        rig.send(body("x", "c-1", "Add A"))
        await rig.results(1)
        rig.journal.entries.clear()  # as if the editor died before the journal write
        rig.consumer.answered.clear()
        rig.send(body("x", "c-1", "Add A"), count=2)
        _, again = await rig.results(2)
    assert len(rig.agent.prompts) == 1
    assert again.status is ResultStatus.COMPLETED
    assert again.summary == "Added A."
    assert again.files_changed == ["a.md"]
    assert rig.git.pushed == ["x"]


def _sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


async def test_a_full_journal_disk_still_answers_once_and_runs_the_agent_once(
        tmp_path: Path) -> None:
    rig = Rig(tmp_path, [Turn(writes={"a.md": "A"}, summary="Added A.")])
    rig.journal.error = errno.ENOSPC
    full = _sample("webordinary_editor_disk_full_total")
    failed_writes = _sample("webordinary_editor_local_write_errors_total", {"what": "journal"})
    async with rig:
        first = rig.send(body("x", "c-1", "Add A"))
        [result] = await rig.results(1)
        await rig.until(lambda: first.receipt in rig.queues.deleted)
        again = rig.send(body("x", "c-1", "Add A"), count=2)  # a late duplicate delivery
        _, replayed = await rig.results(2)
        await rig.until(lambda: again.receipt in rig.queues.deleted)
    assert result.status is ResultStatus.COMPLETED
    assert replayed == result
    assert len(rig.agent.prompts) == 1
    assert _sample("webordinary_editor_disk_full_total") == full + 1
    assert _sample("webordinary_editor_local_write_errors_total",
                   {"what": "journal"}) == failed_writes + 1


async def test_a_full_disk_during_the_work_is_a_clear_final_failure(tmp_path: Path) -> None:
    rig = Rig(tmp_path, [Turn(writes={"a.md": "A"})])
    rig.git.commit_error = OSError(errno.ENOSPC, "No space left on device")
    full = _sample("webordinary_editor_disk_full_total")
    async with rig:
        held = rig.send(body("x", "c-1"))
        [result] = await rig.results(1)
        await rig.until(lambda: held.receipt in rig.queues.deleted)
    assert result.status is ResultStatus.FAILED
    assert result.error is not None
    assert result.error.reason == "disk_full"
    assert "storage of this editing environment is full" in result.error.message
    assert _sample("webordinary_editor_disk_full_total") == full + 1
    assert len(rig.agent.prompts) == 1


async def test_a_used_up_monthly_budget_refuses_new_edits_clearly(tmp_path: Path) -> None:
    rig = Rig(tmp_path, [Turn(writes={"a.md": "A"}, usage=Usage(
        input_tokens=1000, output_tokens=200, cost_usd=0.6))],
        policy={"monthly_budget_usd": 0.5})
    async with rig:
        rig.send(body("x", "c-1", "Add A"))
        rig.send(body("x", "c-2", "Add B"))
        rig.send(body("x", "b-1", "", kind="build"))
        first, refused, built = await rig.results(3)
    assert first.status is ResultStatus.COMPLETED
    assert first.usage == Usage(input_tokens=1000, output_tokens=200, cost_usd=0.6)
    assert rig.ledger.runs == [first.usage]
    assert refused.status is ResultStatus.REJECTED
    assert refused.error is not None
    assert refused.error.reason == "budget_exceeded"
    assert "editing budget for" in refused.error.message
    assert "(US$0.50) is used up (US$0.60 spent)" in refused.error.message
    assert "Editing resumes on 1 " in refused.error.message
    assert len(rig.agent.prompts) == 1
    assert built.status is ResultStatus.COMPLETED  # a build costs no model time
