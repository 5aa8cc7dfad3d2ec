"""Pushing a session branch: reading git's failures, and the remote moving under us (real git)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.editor.harness import git, make_remote
from tests.unit.editor.test_sessions import sessions_for
from webordinary.contracts.messages import PushState
from webordinary.editor import delivery
from webordinary.editor.delivery import PushFailure
from webordinary.editor.sessions import Sessions


@pytest.mark.parametrize(("output", "expected"), [
    ("! refs/heads/a:refs/heads/a [rejected] (fetch first)\nhint: Updates were rejected",
     PushFailure.MOVED),
    (" ! [rejected]        a -> a (non-fast-forward)", PushFailure.MOVED),
    ("fatal: unable to access 'https://x/': Could not resolve host: x", PushFailure.TRANSIENT),
    ("fatal: unable to access 'http://127.0.0.1:1/r.git/': Failed to connect to 127.0.0.1 "
     "port 1: Connection refused", PushFailure.TRANSIENT),
    ("error: RPC failed; HTTP 503 curl 22", PushFailure.TRANSIENT),
    ("remote: Permission to acme/site.git denied to bot.\nfatal: unable to access: "
     "The requested URL returned error: 403", PushFailure.PERMANENT),
    ("! [remote rejected] a -> a (protected branch hook declined)", PushFailure.PERMANENT),
    ("error: unable to write file: No space left on device", PushFailure.PERMANENT),
])
def test_push_failures_are_classified(output: str, expected: PushFailure) -> None:
    assert delivery.classify(output) is expected


def test_the_reason_is_the_error_line_not_the_hints() -> None:
    output = ("To /srv/remote.git\n ! [rejected] a -> a (fetch first)\n"
              "error: failed to push some refs to '/srv/remote.git'\n"
              "hint: Updates were rejected because the remote contains work\n")
    assert delivery.reason(output) == "error: failed to push some refs to '/srv/remote.git'"


def test_backoff_doubles_and_is_capped() -> None:
    assert [delivery.backoff(n, 1.0) for n in (1, 2, 3)] == [1.0, 2.0, 4.0]
    assert delivery.backoff(10, 1.0, cap=30) == 30


def test_side_branch_is_the_first_free_or_our_own() -> None:
    assert delivery.side_branch("thread-x", {}) == "thread-x-conflict-1"
    assert delivery.side_branch("thread-x", {1: False}) == "thread-x-conflict-2"
    assert delivery.side_branch("thread-x", {1: False, 2: True}) == "thread-x-conflict-2"
    refs = ["refs/heads/thread-x-conflict-2", "refs/heads/thread-xy-conflict-1",
            "refs/heads/thread-x-conflict-10"]
    assert delivery.side_numbers("thread-x", refs) == [2, 10]


def _teammate(tmp_path: Path, remote: Path, name: str, branch: str, path: str,
              text: str) -> str:
    """Someone else pushes to the session branch (clone, change, push)."""
    clone = tmp_path / name
    git("clone", "-q", "--branch", branch, str(remote), str(clone), cwd=tmp_path)
    (clone / path).parent.mkdir(parents=True, exist_ok=True)
    (clone / path).write_text(text)
    git("add", "-A", cwd=clone)
    git("commit", "-q", "-m", f"teammate: {path}", cwd=clone)
    git("push", "-q", "origin", branch, cwd=clone)
    return git("rev-parse", "HEAD", cwd=clone).strip()


async def committed(tmp_path: Path, text: str, message: str) -> tuple[Path, Sessions, Path]:
    """Session `x` of a fresh remote, its worktree one commit (a.md) ahead, not pushed yet."""
    remote = make_remote(tmp_path)
    sessions = sessions_for(tmp_path, remote)
    await sessions.prepare()
    tree = await sessions.worktree("x")
    (tree / "a.md").write_text(text)
    await sessions.commit(tree, message)
    return remote, sessions, tree


async def test_a_moved_remote_is_rebased_onto_and_a_conflict_goes_to_a_side_branch(
        tmp_path: Path) -> None:
    remote, sessions, tree = await committed(tmp_path, "mine\n", "A\n")
    assert (await sessions.publish("x")).state is PushState.PUSHED

    theirs = _teammate(tmp_path, remote, "t1", "thread-x", "b.md", "theirs\n")
    (tree / "c.md").write_text("mine again\n")
    await sessions.commit(tree, "C\n")
    moved = await sessions.publish("x")
    assert moved.state is PushState.PUSHED
    assert moved.integrated == "rebase"
    tip = git("rev-parse", "thread-x", cwd=remote).strip()
    assert tip == await sessions.head(tree)
    git("merge-base", "--is-ancestor", theirs, tip, cwd=remote)
    assert {"a.md", "b.md", "c.md"} <= set(
        git("ls-tree", "--name-only", "thread-x", cwd=remote).split())

    _teammate(tmp_path, remote, "t2", "thread-x", "a.md", "their version\n")
    (tree / "a.md").write_text("my version\n")
    await sessions.commit(tree, "A2\n")
    mine = await sessions.head(tree)
    conflict = await sessions.publish("x")
    assert conflict.state is PushState.CONFLICT
    assert conflict.branch == "thread-x-conflict-1"
    assert git("rev-parse", "thread-x-conflict-1", cwd=remote).strip() == mine
    assert await sessions.head(tree) == mine
    assert not await sessions.dirty(tree)
    assert git("show", "thread-x:a.md", cwd=remote) == "their version\n"

    (tree / "d.md").write_text("more of mine\n")
    await sessions.commit(tree, "D\n")
    again = await sessions.publish("x")
    assert again.branch == "thread-x-conflict-1"  # our own side branch, fast-forwarded
    assert git("rev-parse", "thread-x-conflict-1", cwd=remote).strip() == \
        await sessions.head(tree)


async def test_a_conflicting_rebase_falls_back_to_a_merge_when_that_is_clean(
        tmp_path: Path) -> None:
    remote, sessions, tree = await committed(tmp_path, "1\n", "one\n")
    assert (await sessions.publish("x")).state is PushState.PUSHED
    # Ours: change a.md, then change it back; theirs: change a.md the same way as our first.
    (tree / "a.md").write_text("2\n")
    await sessions.commit(tree, "two\n")
    (tree / "a.md").write_text("1\n")
    await sessions.commit(tree, "back to one\n")
    _teammate(tmp_path, remote, "t1", "thread-x", "a.md", "3\n")
    merged = await sessions.publish("x")
    assert merged.state is PushState.PUSHED
    assert merged.integrated == "merge"
    assert git("show", "thread-x:a.md", cwd=remote) == "3\n"
    assert not await sessions.dirty(tree)


async def test_an_unreachable_remote_is_retried_with_backoff_then_reported(
        tmp_path: Path) -> None:
    _, sessions, _ = await committed(tmp_path, "1\n", "one\n")
    git("remote", "set-url", "origin", "http://127.0.0.1:9/remote.git", cwd=sessions.workspace.repo)
    failed = await sessions.publish("x", attempts=3, backoff=0.05)
    assert failed.state is PushState.FAILED
    assert failed.attempts == 3
    assert failed.error is not None
    assert "127.0.0.1" in failed.error
    assert "hint:" not in failed.error


def test_the_customer_reads_plain_words_not_git_output() -> None:
    assert delivery.plain("fatal: unable to access 'https://x/': Could not resolve host: x") \
        == "the repository could not be reached"
    assert delivery.plain("remote: Permission to acme/site.git denied to bot.") == \
        "the repository did not accept the editor's access"
    assert delivery.plain("! [remote rejected] a -> a (pre-receive hook declined)") == \
        "the repository did not accept it"


async def test_a_half_done_rebase_and_stale_locks_are_cleaned_up_at_start(
        tmp_path: Path) -> None:
    remote, sessions, tree = await committed(tmp_path, "1\n", "one\n")
    await sessions.publish("x")
    _teammate(tmp_path, remote, "t1", "thread-x", "a.md", "theirs\n")
    (tree / "a.md").write_text("mine\n")
    await sessions.commit(tree, "mine\n")
    git("fetch", "-q", "origin", cwd=tree)
    code, _ = await sessions.git("rebase", "origin/thread-x", cwd=tree, check=False)
    assert code != 0  # stopped in the middle of a conflicting rebase, as a killed editor would
    lock = sessions.workspace.repo / ".git" / "worktrees" / "thread-x" / "index.lock"
    lock.write_text("")

    again = sessions_for(tmp_path, remote)
    await again.prepare()
    assert not lock.exists()
    await again.recover("x")
    assert not (sessions.workspace.repo / ".git" / "worktrees" / "thread-x" /
                "rebase-merge").exists()
    assert (tree / "a.md").read_text() == "mine\n"
    assert not await again.dirty(tree)
