"""The editor end to end: queue in, Claude Code (real CLI, scripted API), git, queue out."""

from __future__ import annotations

import time

from tests.integration.editor.harness import Rig, command
from webordinary.devkit.messages_api import edit, read, stall, text, tools, write

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
    sha = result["commit"]
    assert rig.log_messages("thread-x")[0].startswith("Make the headline announce our spring sale")
    from tests.integration.editor.harness import git
    assert git("rev-parse", "thread-x", cwd=rig.repo).strip() == sha
    assert "Spring sale on all stamps" in rig.show("thread-x", INDEX)
    assert OLD_HEADLINE in rig.show("main", INDEX)
    worktree = rig.workspace / "sessions" / "thread-x"
    assert "Spring sale on all stamps" in (worktree / INDEX).read_text()
    assert rig.api.main_requests()[0].cwd == str(worktree)
    assert rig.queue_depth(rig.input_url) == 0
