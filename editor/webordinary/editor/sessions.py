"""Git on the volume: the main clone, one worktree per session on `thread-{id}`, commits, pushes."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from webordinary.contracts.naming import branch_name, is_thread_id
from webordinary.editor.settings import Workspace

log = logging.getLogger(__name__)

EXCLUDES = ("node_modules/", ".astro/", "dist/")
STAMP = ".webordinary-stamp"


class GitError(RuntimeError):
    """A git command failed; the message carries its stderr."""

    def __init__(self, args: tuple[str, ...], code: int, stderr: str) -> None:
        self.code = code
        self.stderr = stderr
        super().__init__(f"git {' '.join(args[:3])} failed ({code}): {stderr.strip()[-800:]}")


@dataclass(frozen=True)
class Identity:
    name: str
    email: str


class Sessions:
    """The repository and its session worktrees, driven through the git CLI."""

    def __init__(
        self,
        workspace: Workspace,
        *,
        repository_url: str,
        branch: str,
        token: str | None,
        identity: Identity,
    ) -> None:
        self.workspace = workspace
        self.repository_url = repository_url
        self.branch = branch
        self.identity = identity
        self._token = token
        self._lock = asyncio.Lock()
        self._fetch: asyncio.Task[None] | None = None

    def _env(self, network: bool) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_AUTHOR_NAME": self.identity.name, "GIT_AUTHOR_EMAIL": self.identity.email,
            "GIT_COMMITTER_NAME": self.identity.name,
            "GIT_COMMITTER_EMAIL": self.identity.email,
        })
        config = [("core.hooksPath", "/dev/null")]
        if network and self._token and urlparse(self.repository_url).scheme == "https":
            # Given per command through the environment: the token never lands in .git/config.
            basic = base64.b64encode(f"x-access-token:{self._token}".encode()).decode()
            config.append(("http.extraHeader", f"Authorization: Basic {basic}"))
        env["GIT_CONFIG_COUNT"] = str(len(config))
        for index, (key, value) in enumerate(config):
            env[f"GIT_CONFIG_KEY_{index}"] = key
            env[f"GIT_CONFIG_VALUE_{index}"] = value
        return env

    async def git(self, *args: str, cwd: Path | None = None, network: bool = False,
                  check: bool = True) -> tuple[int, str]:
        process = await asyncio.create_subprocess_exec(
            "git", *args, cwd=str(cwd or self.workspace.repo), env=self._env(network),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate()
        code = process.returncode or 0
        if check and code != 0:
            raise GitError(args, code, err.decode(errors="replace"))
        return code, out.decode(errors="replace")

    async def prepare(self) -> None:
        """Clone on first start, fetch afterwards; keep build output out of every worktree.

        On a warm volume the fetch runs in the background (new worktrees wait for it): a slow
        or unreachable git host must not keep the existing sessions from working.
        """
        self.workspace.create()
        repo = self.workspace.repo
        if (repo / ".git").exists():
            self._fetch = asyncio.create_task(self._fetch_origin())
        else:
            if repo.exists():
                shutil.rmtree(repo)
            await self.git("clone", "--quiet", "--branch", self.branch, "--",
                           self.repository_url, str(repo), cwd=self.workspace.root, network=True)
        exclude = repo / ".git" / "info" / "exclude"
        exclude.parent.mkdir(parents=True, exist_ok=True)
        current = exclude.read_text() if exclude.exists() else ""
        missing = [line for line in EXCLUDES if line not in current.splitlines()]
        if missing:
            exclude.write_text(current + "".join(f"{line}\n" for line in missing))
        await self.git("worktree", "prune")

    async def _fetch_origin(self) -> None:
        try:
            await self.git("fetch", "--prune", "--quiet", "origin", network=True)
        except GitError as exc:
            log.warning("fetch failed, new sessions start from the last fetched state: %s", exc)

    async def fetched(self) -> None:
        """Wait for the start-up fetch (if one is running)."""
        if self._fetch is not None:
            await asyncio.shield(self._fetch)

    def known(self) -> list[str]:
        """Thread ids that have a worktree on the volume."""
        found = []
        if self.workspace.sessions.is_dir():
            for path in sorted(self.workspace.sessions.iterdir()):
                thread = path.name.removeprefix("thread-")
                if path.name.startswith("thread-") and is_thread_id(thread) \
                        and (path / ".git").exists():
                    found.append(thread)
        return found

    async def _ref_exists(self, ref: str) -> bool:
        code, _ = await self.git("rev-parse", "--verify", "--quiet", ref, check=False)
        return code == 0

    async def worktree(self, thread_id: str) -> Path:
        """The session's worktree, created on first use from the session or default branch."""
        path = self.workspace.worktree(thread_id)
        branch = branch_name(thread_id)
        async with self._lock:
            if (path / ".git").exists():
                return path
            await self.fetched()
            await self.git("worktree", "prune")
            if path.exists():
                shutil.rmtree(path)
            if await self._ref_exists(f"refs/heads/{branch}"):
                await self.git("worktree", "add", "--quiet", str(path), branch)
            elif await self._ref_exists(f"refs/remotes/origin/{branch}"):
                await self.git("worktree", "add", "--quiet", "--track", "-b", branch, str(path),
                               f"origin/{branch}")
            else:
                await self.git("worktree", "add", "--quiet", "--no-track", "-b", branch,
                               str(path), f"origin/{self.branch}")
            return path

    async def head(self, worktree: Path) -> str:
        _, out = await self.git("rev-parse", "HEAD", cwd=worktree)
        return out.strip()

    async def dirty(self, worktree: Path) -> bool:
        _, out = await self.git("status", "--porcelain", "--untracked-files=all", cwd=worktree)
        return bool(out.strip())

    async def commit(self, worktree: Path, message: str) -> str | None:
        """Commit everything in the worktree; the new sha, or None when nothing changed."""
        await self.git("add", "--all", cwd=worktree)
        code, _ = await self.git("diff", "--cached", "--quiet", cwd=worktree, check=False)
        if code == 0:
            return None
        await self._commit_with_message(worktree, message)
        return await self.head(worktree)

    async def _commit_with_message(self, worktree: Path, message: str) -> None:
        process = await asyncio.create_subprocess_exec(
            "git", "commit", "--quiet", "--no-verify", "-F", "-", cwd=str(worktree),
            env=self._env(False), stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        _, err = await process.communicate(message.encode("utf-8"))
        if process.returncode:
            raise GitError(("commit",), process.returncode, err.decode(errors="replace"))

    async def changed_files(self, worktree: Path, since: str) -> list[str]:
        _, out = await self.git("diff", "--name-only", f"{since}..HEAD", cwd=worktree)
        return [line for line in out.splitlines() if line]

    async def has_remote(self) -> bool:
        _, out = await self.git("remote")
        return "origin" in out.split()

    async def push(self, thread_id: str) -> None:
        branch = branch_name(thread_id)
        await self.git("push", "--quiet", "origin", f"refs/heads/{branch}:refs/heads/{branch}",
                       network=True)


def lock_digest(repo: Path) -> str | None:
    """Hash of package.json + lock file, or None when the site has no node dependencies."""
    manifest = repo / "package.json"
    if not manifest.is_file():
        return None
    digest = hashlib.sha256(manifest.read_bytes())
    lock = repo / "package-lock.json"
    if lock.is_file():
        digest.update(lock.read_bytes())
    return digest.hexdigest()[:32]


async def install_dependencies(workspace: Workspace) -> bool:
    """`npm ci` once into sessions/node_modules (shared by every worktree); stamp-skipped.

    A parent node_modules (not a symlink) is what node and Astro resolve from a worktree.
    """
    digest = lock_digest(workspace.repo)
    if digest is None:
        return False
    stamp = workspace.node_modules / STAMP
    if stamp.is_file() and stamp.read_text().strip() == digest:
        return False
    for name in ("package.json", "package-lock.json"):
        source = workspace.repo / name
        if source.is_file():
            shutil.copyfile(source, workspace.sessions / name)
    has_lock = (workspace.sessions / "package-lock.json").is_file()
    process = await asyncio.create_subprocess_exec(
        "npm", "ci" if has_lock else "install", "--no-audit", "--no-fund", "--prefer-offline",
        "--loglevel=error", "--cache", str(workspace.npm_cache), cwd=str(workspace.sessions),
        env={**os.environ, "TMPDIR": str(workspace.tmp)},
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await process.communicate()
    except asyncio.CancelledError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        raise
    if process.returncode:
        raise RuntimeError(f"npm install failed: {out.decode(errors='replace')[-1500:]}")
    stamp.write_text(digest)
    log.info("node dependencies installed in %s", workspace.node_modules)
    return True
