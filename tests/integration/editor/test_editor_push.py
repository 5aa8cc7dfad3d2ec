"""Every completed edit reaches the customer's repository; a moved or conflicting remote is
handled without force and without losing work (real editor process, real git remote)."""

from __future__ import annotations

from pathlib import Path

from tests.integration.editor.harness import Rig, command, git
from webordinary.devkit.messages_api import text, tools, write


def teammate_push(rig: Rig, name: str, path: str, content: str) -> str:
    """Someone else pushes a commit to the session branch."""
    clone = rig.base / name
    git("clone", "-q", "--branch", "thread-x", str(rig.remote), str(clone), cwd=rig.base)
    target = clone / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(content)
    git("add", "-A", cwd=clone)
    git("commit", "-q", "-m", f"teammate changes {path}", cwd=clone)
    git("push", "-q", "origin", "thread-x", cwd=clone)
    return git("rev-parse", "HEAD", cwd=clone).strip()


def remote_file(rig: Rig, ref: str, path: str) -> str:
    return rig.show(ref, path, where=rig.remote)


def test_edits_are_pushed_rebased_onto_a_moved_remote_and_conflicts_go_aside(rig: Rig) -> None:
    rig.api.push(
        tools(write("src/pages/a.md", "# A\n")), text("Added page A."),
        tools(write("src/pages/b.md", "# B\n")), text("Added page B."),
        tools(write("src/pages/shared.md", "# Mine\n")), text("Wrote the shared page."),
    )
    rig.start_editor()
    rig.send(command("x", "e-1", "Add page A"))
    [first] = rig.results(1)
    assert first["status"] == "completed", first
    assert git("rev-parse", "thread-x", cwd=rig.remote).strip() == first["commit"]

    theirs = teammate_push(rig, "mate-1", "src/pages/theirs.md", "# Theirs\n")
    rig.send(command("x", "e-2", "Add page B"))
    [second] = rig.results(1)
    assert second["status"] == "completed", second
    assert second["push"]["state"] == "pushed"
    assert second["push"]["integrated"] == "rebase"
    tip = git("rev-parse", "thread-x", cwd=rig.remote).strip()
    assert tip == second["commit"]
    git("merge-base", "--is-ancestor", theirs, tip, cwd=rig.remote)
    assert remote_file(rig, "thread-x", "src/pages/b.md") == "# B\n"
    assert remote_file(rig, "thread-x", "src/pages/theirs.md") == "# Theirs\n"

    teammate_push(rig, "mate-2", "src/pages/shared.md", "# Theirs too\n")
    rig.send(command("x", "e-3", "Write the shared page"))
    [third] = rig.results(1)
    assert third["status"] == "conflict", third
    assert third["push"]["state"] == "conflict"
    assert third["push"]["branch"] == "thread-x-conflict-1"
    assert third["error"]["reason"] == "push_conflict"
    assert third["summary"] == "Wrote the shared page."
    assert remote_file(rig, "thread-x-conflict-1", "src/pages/shared.md") == "# Mine\n"
    assert remote_file(rig, "thread-x", "src/pages/shared.md") == "# Theirs too\n"
    assert git("rev-parse", "thread-x", cwd=rig.repo).strip() == third["commit"]
    worktree: Path = rig.workspace / "sessions" / "thread-x"
    assert git("status", "--porcelain", cwd=worktree) == ""


def test_an_unreachable_remote_is_in_the_result_not_only_a_log_line(rig: Rig) -> None:
    rig.extra_env["WEBORDINARY_EDITOR_PUSH_BACKOFF_SECONDS"] = "0.1"
    rig.api.push(tools(write("src/pages/a.md", "# A\n")), text("Added page A."))
    rig.start_editor()
    git("remote", "set-url", "origin", "http://127.0.0.1:9/site.git", cwd=rig.repo)
    rig.send(command("x", "e-1", "Add page A"))
    [result] = rig.results(1)
    assert result["status"] == "completed", result
    assert result["push"]["state"] == "failed"
    assert result["push"]["attempts"] == 3
    assert "127.0.0.1" in result["push"]["error"]
    assert "could not be sent to your repository yet (the repository could not be reached)" \
        in result["summary"]
    assert "127.0.0.1" not in result["summary"]


def test_a_conflict_at_shutdown_still_gets_the_work_into_the_repository(rig: Rig) -> None:
    rig.extra_env["WEBORDINARY_PUSH_AFTER_EDIT"] = "false"
    rig.api.push(tools(write("src/pages/a.md", "# A\n")), text("Added page A."),
                 tools(write("src/pages/shared.md", "# Mine\n")), text("Wrote it."))
    editor = rig.start_editor()
    rig.send(command("x", "e-1", "Add page A"))
    [first] = rig.results(1)
    assert first["push"]["state"] == "disabled"
    rig.send(command("x", "p-1", "", kind="push"))
    [pushed] = rig.results(1)
    assert pushed["status"] == "completed", pushed
    teammate_push(rig, "mate", "src/pages/shared.md", "# Theirs\n")
    rig.send(command("x", "e-2", "Write the shared page"))
    [second] = rig.results(1)
    assert second["status"] == "completed"
    assert second["push"]["state"] == "disabled"

    assert editor.terminate(timeout=30) == 0
    assert remote_file(rig, "thread-x-conflict-1", "src/pages/shared.md") == "# Mine\n"
    assert remote_file(rig, "thread-x", "src/pages/shared.md") == "# Theirs\n"
    assert "push of thread-x: conflict" in editor.log()
