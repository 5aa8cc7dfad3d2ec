"""The editor's side of the supervisor: previews, installs and builds over loopback HTTP.

Shaped like the in-process `Previews` (and a build port), so the worker does not care where
customer code runs. The editor's own health/metrics server is started here too: in the split
pod, the preview router belongs to the supervisor's container.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from webordinary.editor.builds import Builds
from webordinary.editor.previews.devserver import PreviewStartError
from webordinary.editor.previews.metrics import health_app
from webordinary.editor.settings import Workspace

log = logging.getLogger(__name__)


class SupervisorUnavailable(ConnectionError):
    """The supervisor did not answer within the wait."""


def thread_of(worktree: Path) -> str:
    return Path(worktree).name.removeprefix("thread-")


class SupervisorClient:
    """Talks to `python -m webordinary.editor.supervisor` at `url` (loopback)."""

    def __init__(self, url: str, *, metrics_port: int, host: str = "0.0.0.0",
                 preview_port: int | None = None, connect_wait: float = 120.0) -> None:
        self.url = url.rstrip("/")
        self._metrics_port = metrics_port
        self._host = host
        self._preview_port = preview_port
        self._connect_wait = connect_wait
        self._ready = False
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None
        self._registering: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._bound_metrics = metrics_port

    async def start(self) -> None:
        self._client = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5))
        self._runner = web.AppRunner(health_app(lambda: self._ready), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self._host, self._metrics_port).start()
        self._bound_metrics = int(self._runner.addresses[0][1])

    @property
    def port(self) -> int | str:
        """The preview router's port (served by the supervisor's container)."""
        return self._preview_port if self._preview_port is not None else self.url

    @property
    def metrics_port(self) -> int:
        return self._bound_metrics

    def set_ready(self, ready: bool) -> None:
        self._ready = ready

    async def _call(self, method: str, path: str, *, limit: float | None = None,
                    wait: float | None = None) -> tuple[int, Any]:
        """One request; connection failures are retried until `wait` (the container may be
        starting or restarting)."""
        assert self._client is not None, "start() first"
        deadline = time.monotonic() + (self._connect_wait if wait is None else wait)
        while True:
            try:
                async with self._client.request(
                        method, f"{self.url}{path}",
                        timeout=aiohttp.ClientTimeout(total=limit, sock_connect=5)) as resp:
                    if resp.content_type == "application/json":
                        return resp.status, await resp.json()
                    return resp.status, await resp.text()
            except aiohttp.ClientConnectionError as exc:
                if time.monotonic() >= deadline:
                    raise SupervisorUnavailable(f"preview supervisor not reachable: {exc}") \
                        from exc
                await asyncio.sleep(0.2)

    def register(self, thread_id: str, worktree: Path) -> None:
        """Make the session previewable (sent in the background; `activate` waits for it)."""
        task = asyncio.create_task(self._register(thread_id))
        self._registering[thread_id] = task
        self._keep(task)

    async def _register(self, thread_id: str) -> None:
        with contextlib.suppress(Exception):
            status, body = await self._call("PUT", f"/sessions/{thread_id}")
            if status != 200:
                log.warning("supervisor did not register %s: %s %s", thread_id, status, body)

    async def activate(self, thread_id: str) -> None:
        pending = self._registering.pop(thread_id, None)
        if pending is not None:
            with contextlib.suppress(BaseException):
                await pending
        status, body = await self._call("POST", f"/sessions/{thread_id}/activate")
        if status == 200:
            return
        detail = body if isinstance(body, dict) else {"error": str(body)}
        raise PreviewStartError(thread_id, str(detail.get("error", f"HTTP {status}")),
                                str(detail.get("log", "")))

    async def install(self) -> bool:
        """npm install in the supervisor's container (stamp-skipped there)."""
        status, body = await self._call("POST", "/install")
        if status != 200 or not isinstance(body, dict):
            message = body.get("error") if isinstance(body, dict) else body
            raise RuntimeError(str(message or f"install failed: HTTP {status}"))
        return bool(body.get("installed"))

    async def build(self, worktree: Path, stop: asyncio.Event,
                    timeout: float) -> tuple[int, str] | None:  # noqa: ASYNC109
        """`npm run build` in the supervisor's container; None when stopped or out of time."""
        build_id = f"{thread_of(worktree)}-{time.monotonic_ns()}"
        path = f"/builds/{thread_of(worktree)}?id={build_id}&timeout={timeout}"
        call = asyncio.create_task(self._call("POST", path, limit=timeout + 30))
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({call, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if not call.done():
            with contextlib.suppress(Exception):
                await self._call("DELETE", f"/builds/{build_id}", limit=10, wait=5)
        status, body = await call
        if status != 200 or not isinstance(body, dict):
            return 1, f"the build could not run (HTTP {status}): {body}"
        if body.get("stopped"):
            return None
        return int(body.get("code", 1)), str(body.get("output", ""))

    def _keep(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        self._keep(asyncio.create_task(work))

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
        if self._client is not None:
            await self._client.close()


class SupervisedBuilds(Builds):
    """The build port when customer code runs in the supervisor's container."""

    def __init__(self, workspace: Workspace, supervisor: SupervisorClient) -> None:
        super().__init__(workspace)
        self.supervisor = supervisor

    async def build(self, worktree: Path, stop: asyncio.Event,
                    timeout: float) -> tuple[int, str] | None:  # noqa: ASYNC109
        return await self.supervisor.build(worktree, stop, timeout)
