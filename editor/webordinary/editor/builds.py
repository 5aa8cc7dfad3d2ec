"""`npm run build` in a session worktree, stoppable, after the shared node_modules exist."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

from webordinary.editor.settings import Workspace


class Builds:
    """Runs builds with no secret in their environment; waits for the dependency install."""

    def __init__(self, workspace: Workspace, deps: asyncio.Task[bool] | None = None) -> None:
        self.workspace = workspace
        self.deps = deps

    async def dependencies(self) -> None:
        """Wait for node_modules; raises what the install raised."""
        if self.deps is not None:
            await asyncio.shield(self.deps)

    async def build(self, worktree: Path, stop: asyncio.Event,
                    limit: float) -> tuple[int, str] | None:
        process = await asyncio.create_subprocess_exec(
            "npm", "run", "build", cwd=str(worktree),
            env={**os.environ, "TMPDIR": str(self.workspace.tmp),
                 "ASTRO_TELEMETRY_DISABLED": "1", "WEBORDINARY_GIT_TOKEN": ""},
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, start_new_session=True,
        )
        communicate = asyncio.create_task(process.communicate())
        watcher = asyncio.create_task(stop.wait())
        await asyncio.wait({communicate, watcher}, timeout=limit,
                           return_when=asyncio.FIRST_COMPLETED)
        watcher.cancel()
        if not communicate.done():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, 9)
            await communicate
            return None
        return process.returncode or 0, communicate.result()[0].decode(errors="replace")
