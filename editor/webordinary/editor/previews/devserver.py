"""One `astro dev` child process: launch, readiness, stop (SIGTERM, then SIGKILL)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import time
from pathlib import Path
from typing import Any

import aiohttp

from webordinary.editor.previews.devconfig import RUNNER

# runner.mjs exits with this when the Astro it preloaded has changed on disk since.
STALE_STANDBY_EXIT = 75


class PreviewStartError(RuntimeError):
    """The dev server exited or never answered; `log_tail` says why."""

    def __init__(self, thread_id: str, message: str, log_tail: str = "") -> None:
        super().__init__(f"preview of session {thread_id!r} failed to start: {message}")
        self.thread_id = thread_id
        self.log_tail = log_tail


def free_port(host: str = "127.0.0.1") -> int:
    """A loopback port free right now (the server uses strictPort, so a lost race fails loud)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def read_tail(path: Path, max_lines: int = 25, max_bytes: int = 16384) -> str:
    """The end of a log file, for error messages and the failure page."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-max_lines:])


def _prepare_state(state: Path, config: dict[str, Any]) -> tuple[Path, Path]:
    state.mkdir(parents=True, exist_ok=True)
    config_path = state / "dev-config.json"
    config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    return config_path, state / "dev.log"


class DevServer:
    """A running dev server; it lives in its own process group so esbuild dies with it."""

    def __init__(
        self, thread_id: str, port: int, process: asyncio.subprocess.Process, log_path: Path
    ) -> None:
        self.thread_id = thread_id
        self.port = port
        self.process = process
        self.log_path = log_path
        self.started_at = time.monotonic()
        self.stopping = False

    @classmethod
    async def launch(
        cls,
        *,
        thread_id: str,
        worktree: Path,
        state: Path,
        config: dict[str, Any],
        env: dict[str, str],
        node: str = "node",
    ) -> DevServer:
        config_path, log_path = _prepare_state(state, config)
        with log_path.open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                node,
                str(RUNNER),
                str(config_path),
                cwd=str(worktree),
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        port = int(config["inline"]["server"]["port"])
        return cls(thread_id, port, process, log_path)

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, max_lines: int = 25) -> str:
        return read_tail(self.log_path, max_lines)

    async def wait_ready(self, probe_path: str, within: float) -> None:
        """Return once `probe_path` answers with any HTTP status; raise if the process dies."""
        deadline = time.monotonic() + within
        probe = aiohttp.ClientTimeout(total=None, sock_connect=1.0)
        async with aiohttp.ClientSession(timeout=probe) as client:
            while True:
                if not self.alive:
                    raise PreviewStartError(
                        self.thread_id,
                        f"astro dev exited with status {self.process.returncode}",
                        self.log_tail(),
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise PreviewStartError(
                        self.thread_id, f"no answer within {within:.0f} s", self.log_tail()
                    )
                try:
                    async with asyncio.timeout(remaining):
                        async with client.get(
                            f"{self.base_url}{probe_path}", allow_redirects=False
                        ) as resp:
                            await resp.read()
                            return
                except (aiohttp.ClientConnectionError, TimeoutError):
                    await asyncio.sleep(0.1)

    async def wait(self) -> int:
        return await self.process.wait()

    def _signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)

    async def stop(self, grace: float = 3.0) -> None:
        """SIGTERM the group, SIGKILL it after `grace` (astro sometimes ignores the first)."""
        self.stopping = True
        if self.alive:
            self._signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), grace)
            except TimeoutError:
                self._signal(signal.SIGKILL)
                await self.process.wait()
        # Children outliving the leader (esbuild) still belong to the group.
        self._signal(signal.SIGKILL)


def _standby_log(state_root: Path) -> Path:
    state_root.mkdir(parents=True, exist_ok=True)
    return state_root / f"standby-{secrets.token_hex(4)}.log"


class Standby:
    """A node process that has already imported Astro and waits for a session's config.

    Importing Astro is about half of a dev server's start (~3 s of CPU); a spare does it ahead
    of time and becomes the next session's dev server (one process per session still).
    """

    def __init__(self, process: asyncio.subprocess.Process, log_path: Path) -> None:
        self.process = process
        self.log_path = log_path

    @classmethod
    async def spawn(cls, *, cwd: Path, state_root: Path, env: dict[str, str], node: str) -> Standby:
        log_path = _standby_log(state_root)
        with log_path.open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                node,
                str(RUNNER),
                "--standby",
                cwd=str(cwd),
                env=env,
                stdin=asyncio.subprocess.PIPE,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        return cls(process, log_path)

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    async def assign(self, *, thread_id: str, state: Path, config: dict[str, Any]) -> DevServer:
        """Hand the session's config over; the process becomes that session's dev server."""
        config_path, log_path = _prepare_state(state, config)
        os.replace(self.log_path, log_path)  # the process keeps writing to the renamed file
        stdin = self.process.stdin
        if stdin is None:
            raise BrokenPipeError("standby has no stdin")
        stdin.write(f"{config_path}\n".encode())
        await stdin.drain()
        stdin.close()
        port = int(config["inline"]["server"]["port"])
        return DevServer(thread_id, port, self.process, log_path)

    async def discard(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        await self.process.wait()
        self.log_path.unlink(missing_ok=True)
