"""The editor end to end: queue in, Claude Code (real CLI, scripted API), git, queue out."""

from __future__ import annotations

import time

from tests.integration.editor.harness import ENVIRONMENT, Rig, command, git
from webordinary.devkit.messages_api import edit, error, read, stall, text, tools, write
from webordinary.editor.agent import session_id_for

INDEX = "src/pages/index.astro"
OLD_HEADLINE = "Welcome to Amelia's Stamps"


def test_edit_changes_files_commits_on_thread_branch_and_answers(rig: Rig) -> None:
    rig.api.push(
        tools(read(INDEX)),
        tools(edit(INDEX, OLD_HEADLINE, "Spring sale on all stamps")),
        text("I changed the headline to announce the spring sale."),
    )
    rig.start_editor()
    rig.send(command("x", "cmd-1", "Make the headline announce our spring sale"))
    [result] = rig.results(1)

    assert result["status"] == "completed", result
    assert result["commandId"] == "cmd-1"
    assert result["sessionId"] == "x"
    assert result["filesChanged"] == [INDEX]
    assert result["summary"] == "I changed the headline to announce the spring sale."
    assert result["previewPath"] == "/session/x/"
    assert result["usage"]["inputTokens"] > 0
    assert result["usage"]["outputTokens"] > 0
    assert result["timings"]["durationMs"] > 0
    assert git("rev-parse", "thread-x", cwd=rig.repo).strip() == result["commit"]
    assert git("rev-parse", "thread-x", cwd=rig.remote).strip() == result["commit"]
    assert result["push"] == {"state": "pushed", "branch": "thread-x", "attempts": 1}
    message = rig.log_messages("thread-x")[0]
    assert message.startswith("Make the headline announce our spring sale")
    assert "I changed the headline" in message
    assert "Spring sale on all stamps" in rig.show("thread-x", INDEX)
    assert OLD_HEADLINE in rig.show("main", INDEX)
    worktree = rig.workspace / "sessions" / "thread-x"
    assert "Spring sale on all stamps" in (worktree / INDEX).read_text()
    assert rig.api.main_requests()[0].cwd == str(worktree)
    rig.wait_empty(rig.input_url)


def test_new_message_interrupts_a_stalled_job_which_is_saved_as_wip(rig: Rig) -> None:
    rig.api.push(
        tools(write("src/pages/draft.md", "# Draft\n\nHalf-done work.\n")),
        stall(),
        text("Now the footer is blue."),
    )
    rig.start_editor()
    rig.send(command("x", "slow-1", "Write a draft page"))
    rig.api.wait_for(lambda: rig.api.stalls_started == 1)
    sent = time.time()
    rig.send(command("y", "fast-2", "Make the footer blue"))
    rig.send(command("y", "fast-2", "Make the footer blue"))  # a duplicate delivery
    first, second = rig.results(2)

    assert rig.api.stalls_ended, "the stalled request never ended"
    latency = rig.api.stalls_ended[0] - sent
    assert latency < 1.5, f"interrupt took {latency:.2f}s"
    assert first["commandId"] == "slow-1"
    assert first["status"] == "interrupted", first
    assert first["filesChanged"] == ["src/pages/draft.md"]
    wip = rig.log_messages("thread-x")
    assert any(m.startswith("WIP (interrupted): Write a draft page") for m in wip), wip
    assert first["summary"] == (
        "A newer message arrived, so we stopped to handle that one. The changes made so far "
        f"are saved as work-in-progress commit {first['commit'][:12]}.")
    assert "Half-done work." in rig.show(first["commit"], "src/pages/draft.md")
    assert second["commandId"] == "fast-2"
    assert second["status"] == "completed", second
    assert second["summary"] == "Now the footer is blue."
    last = rig.api.main_requests()[-1]
    assert "Make the footer blue" in last.transcript()
    assert last.cwd == str(rig.workspace / "sessions" / "thread-y")
    assert second["sessionId"] == "y"
    rig.wait_empty(rig.input_url)
    extra = rig.drain_results()
    assert all(r == second for r in extra), extra  # the duplicate is adopted or replayed
    assert sum("Make the footer blue" in r.transcript() for r in rig.api.main_requests()) == 1


def test_two_sessions_get_two_branches_and_worktrees(rig: Rig) -> None:
    rig.api.push(
        tools(write("src/pages/a.md", "# A\n")), text("Added page A."),
        tools(write("src/pages/b.md", "# B\n")), text("Added page B."),
    )
    rig.start_editor()
    rig.send(command("alpha", "a-1", "Add page A"))
    [a] = rig.results(1)
    rig.send(command("beta", "b-1", "Add page B"))
    [b] = rig.results(1)

    assert (a["status"], b["status"]) == ("completed", "completed")
    assert "src/pages/a.md" in rig.branch_files("thread-alpha")
    assert "src/pages/b.md" not in rig.branch_files("thread-alpha")
    assert "src/pages/b.md" in rig.branch_files("thread-beta")
    assert "src/pages/a.md" not in rig.branch_files("thread-beta")
    cwds = [r.cwd for r in rig.api.main_requests()]
    assert cwds[0] == str(rig.workspace / "sessions" / "thread-alpha")
    assert cwds[-1] == str(rig.workspace / "sessions" / "thread-beta")


def test_malformed_messages_are_rejected_with_the_problem_named(rig: Rig) -> None:
    rig.start_editor()
    rig.send("this is not json")
    rig.send(command("x", "bad-type", kind="dance"))
    rig.send({"sessionId": "x", "commandId": "no-context", "type": "edit"})
    rig.send(command("../etc", "bad-session"))
    results = {r["commandId"]: r for r in rig.results(4)}

    assert all(r["status"] == "rejected" for r in results.values()), results
    [raw] = [r for key, r in results.items() if key.startswith("sqs-")]
    assert raw["error"]["reason"] == "invalid_json"
    assert results["bad-type"]["error"]["reason"] == "unknown_type"
    assert "type" in results["bad-type"]["error"]["message"]
    assert results["no-context"]["error"]["reason"] == "invalid_envelope"
    assert "context" in results["no-context"]["error"]["message"]
    assert "sessionId" in results["bad-session"]["error"]["message"]
    assert rig.api.requests == []
    rig.wait_empty(rig.input_url)
    assert rig.queue_depth(rig.dlq_url) == 0

    rig.api.push(text("Fixed envelope, done."))
    rig.send(command("x", "bad-type", "The corrected command"))
    [corrected] = rig.results(1)
    assert corrected["status"] == "completed", corrected


def test_agent_api_error_is_retried_by_redelivery_then_reported(rig: Rig) -> None:
    rig.api.push(error(500), text("Done on the second try."))
    rig.start_editor()
    rig.send(command("x", "flaky-1", "Fix the typo"))
    [recovered] = rig.results(1)
    assert recovered["status"] == "completed", recovered
    assert recovered["summary"] == "Done on the second try."
    assert len(rig.api.main_requests()) == 2

    rig.api.push(error(500), error(529, "overloaded_error", "Overloaded"))
    rig.send(command("x", "broken-2", "Fix the other typo"))
    [failed] = rig.results(1)
    assert failed["status"] == "failed", failed
    assert failed["error"]["reason"] == "agent_error"
    assert "529" in failed["error"]["message"]
    rig.no_more_results()
    assert len(rig.api.main_requests()) == 4


def test_redelivered_completed_command_is_answered_from_the_journal(rig: Rig) -> None:
    rig.api.push(tools(write("src/pages/once.md", "# Once\n")), text("Added it once."))
    rig.start_editor()
    body = command("x", "dup-1", "Add the page once")
    rig.send(body)
    [first] = rig.results(1)
    requests = len(rig.api.requests)
    rig.send(body)
    [again] = rig.results(1)

    assert first["status"] == "completed"
    assert again == first
    assert len(rig.api.requests) == requests
    assert sum("Add the page once" in m for m in rig.log_messages("thread-x")) == 1


def test_sigterm_mid_job_commits_pushes_and_reports(rig: Rig) -> None:
    rig.api.push(tools(write("src/pages/news.md", "# News\n\nUnfinished.\n")), stall())
    editor = rig.start_editor()
    rig.send(command("x", "term-1", "Write the news page"))
    rig.api.wait_for(lambda: rig.api.stalls_started == 1)
    stopped = time.monotonic()
    code = editor.terminate(timeout=20)
    elapsed = time.monotonic() - stopped

    assert code == 0, editor.log()[-3000:]
    assert elapsed < 10, f"shutdown took {elapsed:.1f}s"
    [result] = rig.results(1)
    assert result["status"] == "interrupted"
    pushed = rig.branch_files("thread-x", where=rig.remote)
    assert "src/pages/news.md" in pushed
    assert "Unfinished." in rig.show("thread-x", "src/pages/news.md", where=rig.remote)
    assert rig.log_messages("thread-x", where=rig.remote)[0].startswith(
        "WIP (editor stopped): Write the news page")
    assert result["summary"].startswith("The editor was restarted")
    assert result["summary"].endswith(
        f"saved as work-in-progress commit {result['commit'][:12]}.")


def test_after_a_crash_work_is_recovered_and_the_conversation_resumes(rig: Rig) -> None:
    # A crashed editor's last long poll may still hold the next message (moto only wakes a
    # waiting poll for new messages): keep polls and leases short so the test stays quick.
    rig.extra_env["WEBORDINARY_EDITOR_POLL_WAIT_SECONDS"] = "2"
    rig.extra_env["WEBORDINARY_EDITOR_VISIBILITY_TIMEOUT_SECONDS"] = "10"
    rig.api.push(text("The first answer about stamps."),
                 tools(write("src/pages/crash.md", "# Before the crash\n")), stall())
    editor = rig.start_editor()
    rig.send(command("x", "mem-1", "Remember that we sell stamps"))
    [first] = rig.results(1)
    assert first["status"] == "completed"
    rig.send(command("x", "crash-2", "Write the crash page"))
    rig.api.wait_for(lambda: rig.api.stalls_started == 1)
    editor.kill()

    rig.api.push(text("Yes, you sell stamps; the page is written."))
    rig.start_editor()
    [second] = rig.results(1, timeout=40)

    assert second["commandId"] == "crash-2"
    assert second["status"] == "completed", second
    messages = rig.log_messages("thread-x")
    assert any(m.startswith("WIP (recovered)") for m in messages), messages
    assert "Before the crash" in rig.show("thread-x", "src/pages/crash.md")
    requests = rig.api.main_requests()
    expected = session_id_for(ENVIRONMENT, "x")
    assert requests[0].session_id == expected
    assert requests[-1].session_id == expected
    transcript = requests[-1].transcript()
    assert "Remember that we sell stamps" in transcript
    assert "The first answer about stamps." in transcript
    assert "Write the crash page" in transcript


def test_an_interrupt_before_any_change_claims_no_commit_and_quotes_no_fragment(
        rig: Rig) -> None:
    rig.api.push(tools(read(INDEX), say="Let me look at the page."), stall(),
                 text("Done with the other one."))
    rig.start_editor()
    rig.send(command("x", "look-1", "Look at the page"))
    rig.api.wait_for(lambda: rig.api.stalls_started == 1)
    rig.send(command("x", "next-2", "Do the other thing"))
    first, second = rig.results(2)

    assert first["status"] == "interrupted", first
    assert first["summary"] == ("A newer message arrived, so we stopped to handle that one. "
                                "Nothing had been changed yet.")
    assert "commit" not in first
    assert not any(m.startswith("WIP") for m in rig.log_messages("thread-x"))
    assert second["status"] == "completed"
