"""Git on the volume: the main clone, one worktree per session on `thread-{id}`, commits, pushes."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from webordinary.contracts.messages import Push, PushState
from webordinary.contracts.naming import branch_name, is_thread_id
from webordinary.editor import delivery, metrics
from webordinary.editor.delivery import PushFailure
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
        credential_helper: str | None = None,
        preview_writable: tuple[str, ...] = (),
    ) -> None:
        self.workspace = workspace
        self.repository_url = repository_url
        self.branch = branch
        self.identity = identity
        self._token = token
        self._helper = credential_helper
        self._preview_writable = preview_writable
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
        local = local_repository(self.repository_url)
        if local is not None:
            # A repository on a local path (dev runs) may belong to another uid than the editor;
            # git's local transport drops command-line config, so it goes in a global file.
            env["GIT_CONFIG_GLOBAL"] = str(self._trust(local))
        if network and self._helper:
            # Per request from the credential proxy: the token is never in this process's env.
            config.extend([("credential.helper", ""), ("credential.helper", self._helper)])
        elif network and self._token and urlparse(self.repository_url).scheme == "https":
            # Given per command through the environment: the token never lands in .git/config.
            basic = base64.b64encode(f"x-access-token:{self._token}".encode()).decode()
            config.append(("http.extraHeader", f"Authorization: Basic {basic}"))
        env["GIT_CONFIG_COUNT"] = str(len(config))
        for index, (key, value) in enumerate(config):
            env[f"GIT_CONFIG_KEY_{index}"] = key
            env[f"GIT_CONFIG_VALUE_{index}"] = value
        return env

    def _trust(self, path: str) -> Path:
        config = self.workspace.root / ".gitconfig"
        wanted = f"[safe]\n\tdirectory = {path}\n"
        if not config.is_file() or config.read_text() != wanted:
            config.write_text(wanted)
        return config

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
        clear_locks(repo / ".git")
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
                self._share(path)
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
            self._share(path)
            return path

    def _share(self, worktree: Path) -> None:
        """Folders of the worktree the preview container writes (Astro's .astro/, dist/);
        the worktree itself and its .git stay the editor's."""
        for name in self._preview_writable:
            folder = worktree / name
            if folder.is_symlink():
                folder.unlink()
            folder.mkdir(exist_ok=True)
            folder.chmod(0o2770)

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

    async def completed_commit(self, worktree: Path, command_id: str) -> tuple[str, str] | None:
        """The commit a finished edit of this command made (sha, message), if there is one."""
        _, out = await self.git("log", "--format=%H%x1f%B%x1e", "--fixed-strings",
                                f"--grep=Command-Id: {command_id}", "HEAD", cwd=worktree)
        for entry in out.split("\x1e"):
            sha, _, message = entry.strip().partition("\x1f")
            trailer = f"Command-Id: {command_id}\n"
            if sha and not message.startswith("WIP (") and trailer in message + "\n":
                return sha, message
        return None

    async def _git_output(self, *args: str, cwd: Path | None = None,
                          network: bool = False) -> tuple[int, str]:
        """Like `git`, never raising, with stdout and stderr together (for push diagnostics)."""
        process = await asyncio.create_subprocess_exec(
            "git", *args, cwd=str(cwd or self.workspace.repo), env=self._env(network),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await process.communicate()
        return process.returncode or 0, out.decode(errors="replace")

    async def publish(self, thread_id: str, *, attempts: int = 3,
                      backoff: float = 1.0) -> Push:
        """Push the session branch; never force.

        The remote moved: fetch, rebase onto it (merge when the rebase conflicts), push again.
        A real conflict: the local branch keeps the work, which goes to a side branch
        `thread-{id}-conflict-{n}`. Transient failures are retried with backoff.
        """
        started = time.monotonic()
        report = await self._publish(thread_id, max(1, attempts), backoff)
        metrics.PUSHES.labels(report.state.value).inc()
        metrics.PUSH_SECONDS.observe(time.monotonic() - started)
        if report.state is PushState.PUSHED:
            log.info("pushed thread-%s to %s%s", thread_id, report.branch,
                     f" after a {report.integrated}" if report.integrated else "")
        else:
            log.warning("push of thread-%s: %s (%s)", thread_id, report.state.value,
                        report.error or report.branch)
        return report

    async def _publish(self, thread_id: str, attempts: int, base: float) -> Push:
        branch = branch_name(thread_id)
        worktree = self.workspace.worktree(thread_id)
        _, local = await self.git("rev-parse", "--verify", "--quiet", f"refs/heads/{branch}",
                                  check=False)
        _, remote = await self.git("rev-parse", "--verify", "--quiet",
                                   f"refs/remotes/origin/{branch}", check=False)
        if local.strip() and local.strip() == remote.strip():
            return Push(state=PushState.PUSHED, branch=branch, attempts=0)
        integrated: Literal["rebase", "merge"] | None = None
        tries = 0
        moves = 0
        last = ""
        while tries < attempts:
            tries += 1
            log.info("pushing %s (attempt %d)", branch, tries)
            code, out = await self._git_output(
                "push", "--porcelain", "origin", f"refs/heads/{branch}:refs/heads/{branch}",
                network=True)
            if code == 0:
                return Push(state=PushState.PUSHED, branch=branch, integrated=integrated,
                            attempts=tries)
            last = out
            failure = delivery.classify(out)
            if failure is PushFailure.MOVED and moves < attempts:
                moves += 1
                tries -= 1  # integrating is progress, not a failed attempt
                how = await self._integrate(worktree, branch)
                if how is None:
                    return await self._side_branch(branch, tries + moves)
                integrated = integrated or how
                continue
            if failure is PushFailure.TRANSIENT and tries < attempts:
                await asyncio.sleep(delivery.backoff(tries, base))
                continue
            break
        return Push(state=PushState.FAILED, attempts=tries + moves, error=delivery.reason(last))

    async def _integrate(self, worktree: Path,
                         branch: str) -> Literal["rebase", "merge"] | None:
        """Bring the remote's new commits in: 'rebase', 'merge', or None on a real conflict."""
        remote = f"refs/remotes/origin/{branch}"
        await self.git("fetch", "--quiet", "origin", f"+refs/heads/{branch}:{remote}",
                       network=True)
        code, _ = await self._git_output("rebase", "--no-autostash", remote, cwd=worktree)
        if code == 0:
            return "rebase"
        await self._git_output("rebase", "--abort", cwd=worktree)
        code, _ = await self._git_output("merge", "--no-edit", "--no-ff", remote, cwd=worktree)
        if code == 0:
            return "merge"
        await self._git_output("merge", "--abort", cwd=worktree)
        return None

    async def _side_branch(self, branch: str, attempts: int) -> Push:
        """Push the local branch to the first free (or our own) `{branch}-conflict-{n}`."""
        _, listing = await self.git("ls-remote", "--heads", "origin",
                                    f"refs/heads/{branch}-conflict-*", network=True)
        taken: dict[int, bool] = {}
        for line in listing.splitlines():
            sha, _, ref = line.partition("\t")
            for n in delivery.side_numbers(branch, [ref]):
                code, _ = await self.git("merge-base", "--is-ancestor", sha.strip(),
                                         f"refs/heads/{branch}", check=False)
                taken[n] = code == 0
        side = delivery.side_branch(branch, taken)
        code, out = await self._git_output(
            "push", "--porcelain", "origin", f"refs/heads/{branch}:refs/heads/{side}",
            network=True)
        if code != 0:
            return Push(state=PushState.FAILED, attempts=attempts + 1,
                        error=delivery.reason(out))
        return Push(state=PushState.CONFLICT, branch=side, attempts=attempts + 1,
                    error=f"{branch} in the repository has changes that conflict with this "
                          f"edit; the edit is on {side}")

    async def recover(self, thread_id: str) -> None:
        """After a crash: finish nothing half-way (abort a rebase or merge, drop stale locks)."""
        worktree = self.workspace.worktree(thread_id)
        code, gitdir = await self._git_output("rev-parse", "--git-dir", cwd=worktree)
        if code != 0:
            return
        meta = Path(gitdir.strip())
        meta = meta if meta.is_absolute() else worktree / meta
        if (meta / "rebase-merge").exists() or (meta / "rebase-apply").exists():
            log.warning("aborting an unfinished rebase of thread-%s", thread_id)
            await self._git_output("rebase", "--abort", cwd=worktree)
        if (meta / "MERGE_HEAD").exists():
            log.warning("aborting an unfinished merge of thread-%s", thread_id)
            await self._git_output("merge", "--abort", cwd=worktree)


def clear_locks(git_dir: Path) -> None:
    """Drop `*.lock` files a killed git left behind (at start no git of ours is running)."""
    if not git_dir.is_dir():
        return
    for path in git_dir.rglob("*.lock"):
        if "objects" not in path.relative_to(git_dir).parts[:1] and path.is_file():
            log.warning("removing a stale git lock %s", path.relative_to(git_dir))
            path.unlink(missing_ok=True)


def local_repository(url: str) -> str | None:
    """The path of a repository given as a local path or file:// URL; None for remote ones."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return parsed.path
    if not parsed.scheme and url.startswith("/"):
        return url
    return None


async def copy_manifests(workspace: Workspace) -> str | None:
    """package.json (+ lock) of the repository into sessions/, for the supervisor's install."""
    digest = lock_digest(workspace.repo)
    if digest is None:
        return None
    for name in ("package.json", "package-lock.json"):
        source = workspace.repo / name
        target = workspace.sessions / name
        if source.is_file():
            shutil.copyfile(source, target)
            target.chmod(0o644)
        elif target.exists():
            target.unlink()
    return digest


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
    # A site without dependencies gets no node_modules from npm: the stamp makes one.
    workspace.node_modules.mkdir(parents=True, exist_ok=True)
    stamp.write_text(digest)
    log.info("node dependencies installed in %s", workspace.node_modules)
    return True
