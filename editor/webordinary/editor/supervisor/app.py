"""The supervisor's control API (loopback only): the editor's handle on customer code.

Requests name sessions by thread id only, never by path: the worktree is always
`{sessions}/thread-{id}`, so the API cannot be pointed at anything outside the sessions folder.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Final

from aiohttp import web

from webordinary.contracts.naming import is_thread_id
from webordinary.editor.previews import Previews, PreviewStartError, UnknownSessionError
from webordinary.editor.previews.scrub import scrub_paths
from webordinary.editor.supervisor import tasks
from webordinary.editor.supervisor.settings import SupervisorSettings

log = logging.getLogger(__name__)
MAX_OUTPUT: Final = 20_000


class Supervisor:
    """Previews plus installs and builds, behind the control API."""

    def __init__(self, settings: SupervisorSettings, previews: Previews) -> None:
        self.settings = settings
        self.previews = previews
        self.sessions = Path(settings.sessions).resolve()
        self._install: asyncio.Task[bool] | None = None
        self._builds: dict[str, asyncio.Event] = {}

    def worktree(self, thread_id: str) -> Path | None:
        if not is_thread_id(thread_id):
            return None
        path = self.sessions / f"thread-{thread_id}"
        return path if path.is_dir() and not path.is_symlink() else None

    def register_known(self) -> int:
        """Every session worktree on the volume is previewable (after a restart too)."""
        count = 0
        if self.sessions.is_dir():
            for entry in self.sessions.iterdir():
                thread = entry.name.removeprefix("thread-")
                if entry.name.startswith("thread-") and self.worktree(thread) is not None:
                    self.previews.register(thread, entry)
                    count += 1
        return count

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_put("/sessions/{thread}", self._register)
        app.router.add_post("/sessions/{thread}/activate", self._activate)
        app.router.add_post("/install", self._install_handler)
        app.router.add_post("/builds/{thread}", self._build)
        app.router.add_delete("/builds/{build}", self._cancel)
        return app

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    def _session(self, request: web.Request) -> tuple[str, Path]:
        thread = request.match_info["thread"]
        worktree = self.worktree(thread)
        if worktree is None:
            raise web.HTTPNotFound(text=f"no worktree for session {thread!r}\n")
        return thread, worktree

    async def _register(self, request: web.Request) -> web.Response:
        thread, worktree = self._session(request)
        self.previews.register(thread, worktree)
        return web.json_response({"thread": thread})

    async def _activate(self, request: web.Request) -> web.Response:
        thread, worktree = self._session(request)
        self.previews.register(thread, worktree)
        try:
            await self.previews.activate(thread)
        except UnknownSessionError as exc:
            raise web.HTTPNotFound(text=f"{exc}\n") from exc
        except PreviewStartError as exc:
            return web.json_response(
                {"error": str(exc), "log": self._scrub(exc.log_tail)}, status=502)
        except Exception as exc:
            return web.json_response({"error": str(exc)}, status=503)
        return web.json_response({"thread": thread, "port": self.previews.server_port(thread)})

    async def _install_handler(self, _: web.Request) -> web.Response:
        if self._install is None or self._install.done():
            self._install = asyncio.create_task(tasks.install(
                self.sessions, cache=self.sessions / ".previews" / "npm-cache",
                tmp=self.settings.tmp))
        try:
            installed = await asyncio.shield(self._install)
        except Exception as exc:
            return web.json_response({"error": self._scrub(str(exc))}, status=500)
        return web.json_response({"installed": installed})

    async def _build(self, request: web.Request) -> web.Response:
        thread, worktree = self._session(request)
        build = request.query.get("id") or thread
        timeout = min(float(request.query.get("timeout") or self.settings.build_timeout_seconds),
                      self.settings.build_timeout_seconds)
        stop = self._builds.setdefault(build, asyncio.Event())
        try:
            done = await tasks.run(["npm", "run", "build"], cwd=worktree,
                                   env=tasks.customer_env(os.environ, self.settings.tmp),
                                   limit=timeout, stop=stop)
        finally:
            self._builds.pop(build, None)
        if done is None:
            return web.json_response({"stopped": True, "interrupted": stop.is_set()})
        code, output = done
        return web.json_response({"code": code, "output": self._scrub(output[-MAX_OUTPUT:])})

    async def _cancel(self, request: web.Request) -> web.Response:
        stop = self._builds.get(request.match_info["build"])
        if stop is not None:
            stop.set()
        return web.json_response({"cancelled": stop is not None})

    def _scrub(self, text: str) -> str:
        return scrub_paths(text, self.sessions)
