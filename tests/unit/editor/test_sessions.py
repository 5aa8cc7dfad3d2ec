"""Git sessions over real git: clone/fetch, one worktree per thread, commits, pushes."""

from __future__ import annotations

from pathlib import Path

from tests.integration.editor.harness import git, make_remote
from webordinary.editor.sessions import Identity, Sessions, install_dependencies
from webordinary.editor.settings import Workspace


def sessions_for(tmp_path: Path, remote: Path, name: str = "ws") -> Sessions:
    return Sessions(Workspace(tmp_path / name), repository_url=str(remote), branch="main",
                    token=None, identity=Identity("Editor", "editor@example.com"))


async def test_worktrees_per_thread_commit_and_push(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    sessions = sessions_for(tmp_path, remote)
    await sessions.prepare()
    a = await sessions.worktree("a")
    b = await sessions.worktree("b")
    assert a == tmp_path / "ws" / "sessions" / "thread-a"
    assert await sessions.worktree("a") == a
    assert sessions.known() == ["a", "b"]
    base = await sessions.head(a)
    assert await sessions.commit(a, "nothing\n") is None

    (a / "src" / "pages" / "new.md").write_text("# New\n")
    (a / "node_modules").mkdir()
    (a / "node_modules" / "junk.js").write_text("x")
    (a / ".astro").mkdir()
    (a / ".astro" / "types.d.ts").write_text("x")
    sha = await sessions.commit(a, "Add a page\n\nbody\n")
    assert sha is not None
    assert sha != base
    assert await sessions.changed_files(a, base) == ["src/pages/new.md"]
    assert not await sessions.dirty(a)
    assert await sessions.head(b) == base
    assert git("log", "-1", "--format=%an <%ae>|%s", "thread-a", cwd=a).strip() == \
        "Editor <editor@example.com>|Add a page"

    assert (await sessions.publish("a")).state == "pushed"
    assert git("rev-parse", "thread-a", cwd=remote).strip() == sha


async def test_a_new_volume_resumes_a_pushed_session_branch(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    first = sessions_for(tmp_path, remote, "one")
    await first.prepare()
    worktree = await first.worktree("a")
    (worktree / "kept.md").write_text("kept\n")
    await first.commit(worktree, "Keep\n")
    assert (await first.publish("a")).state == "pushed"

    second = sessions_for(tmp_path, remote, "two")
    await second.prepare()
    again = await second.worktree("a")
    assert (again / "kept.md").read_text() == "kept\n"

    git("branch", "-f", "main", "thread-a", cwd=remote)
    await second.prepare()
    fresh = await second.worktree("b")
    assert (fresh / "kept.md").exists()


async def test_dependencies_are_skipped_without_a_manifest(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path)
    workspace.create()
    (workspace.repo).mkdir()
    assert await install_dependencies(workspace) is False


def test_the_git_token_goes_only_to_https_network_commands(tmp_path: Path) -> None:
    https = Sessions(Workspace(tmp_path), repository_url="https://git.example/acme/site.git",
                     branch="main", token="s3cret", identity=Identity("E", "e@example.com"))
    env = https._env(network=True)
    headers = [env[f"GIT_CONFIG_VALUE_{i}"] for i in range(int(env["GIT_CONFIG_COUNT"]))]
    assert any(h.startswith("Authorization: Basic ") for h in headers)
    assert "s3cret" not in " ".join(headers)
    local = https._env(network=False)
    assert "Authorization" not in " ".join(local.values())
    plain = Sessions(Workspace(tmp_path), repository_url="/srv/site.git", branch="main",
                     token="s3cret", identity=Identity("E", "e@example.com"))
    assert "Authorization" not in " ".join(plain._env(network=True).values())


async def test_a_warm_volume_works_while_the_git_host_is_unreachable(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    sessions = sessions_for(tmp_path, remote)
    await sessions.prepare()
    worktree = await sessions.worktree("a")
    remote.rename(tmp_path / "gone.git")

    again = sessions_for(tmp_path, remote)
    await again.prepare()
    await again.fetched()
    assert await again.worktree("a") == worktree
    (worktree / "offline.md").write_text("still works\n")
    assert await again.commit(worktree, "Offline edit\n") is not None
    assert (await again.worktree("b")).is_dir()


async def test_a_site_without_dependencies_installs_without_node_modules(
        tmp_path: Path) -> None:
    workspace = Workspace(tmp_path)
    workspace.create()
    workspace.repo.mkdir()
    (workspace.repo / "package.json").write_text('{"name": "bare", "version": "1.0.0"}\n')
    assert await install_dependencies(workspace) is True  # npm made no node_modules
    assert (workspace.node_modules / ".webordinary-stamp").is_file()
    assert await install_dependencies(workspace) is False  # stamped: skipped next time


async def test_the_supervisor_install_survives_npm_leaving_no_node_modules(
        tmp_path: Path) -> None:
    from webordinary.editor.supervisor.tasks import install

    sessions = tmp_path / "sessions"
    sessions.mkdir()
    (sessions / "package.json").write_text('{"name": "bare", "version": "1.0.0"}\n')
    (tmp_path / "tmp").mkdir()
    assert await install(sessions, cache=tmp_path / "cache", tmp=tmp_path / "tmp") is True
    assert (sessions / "node_modules" / ".webordinary-stamp").is_file()
