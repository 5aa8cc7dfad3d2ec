"""The Astro fixture site as an editor workspace: a repo, one git worktree per session.

`make_astro_workspace(root, ["a", "b"])` gives `{root}/sessions` with `thread-a`, `thread-b`
(worktrees of `{root}/repo` on branches `thread-a`, `thread-b`) and the fixture's node_modules
hard-linked at `sessions/node_modules` (the layout the editor uses).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

FIXTURE_SITE = Path(__file__).resolve().parents[1] / "fixtures" / "site"
_SKIP = {"node_modules", ".astro", "dist"}
_GIT_ENV = {
    "GIT_AUTHOR_NAME": "Fixture",
    "GIT_AUTHOR_EMAIL": "fixture@example.com",
    "GIT_COMMITTER_NAME": "Fixture",
    "GIT_COMMITTER_EMAIL": "fixture@example.com",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
    "PATH": "/usr/local/bin:/usr/bin:/bin",
}


def _git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=_GIT_ENV, check=True, capture_output=True, text=True
    )
    return done.stdout


def make_astro_workspace(root: Path, threads: Sequence[str]) -> Path:
    """Build the workspace under `root` and return its sessions directory."""
    modules = FIXTURE_SITE / "node_modules"
    if not (modules / "astro" / "package.json").is_file():
        pytest.fail("the Astro fixture site has no node_modules: run ./dev setup")
    repo = root / "repo"
    shutil.copytree(FIXTURE_SITE, repo, ignore=lambda _d, names: [n for n in names if n in _SKIP])
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "site")
    sessions = root / "sessions"
    sessions.mkdir()
    subprocess.run(["cp", "-al", str(modules), str(sessions / "node_modules")], check=True)
    for thread in threads:
        branch = f"thread-{thread}"
        _git(repo, "worktree", "add", "-q", "-b", branch, str(sessions / branch))
    return sessions


def git_status(worktree: Path) -> str:
    """`git status --porcelain` of a worktree (untracked files included)."""
    return _git(worktree, "status", "--porcelain", "--untracked-files=all")
