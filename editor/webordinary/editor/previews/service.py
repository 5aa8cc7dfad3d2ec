"""Live previews: one `astro dev` per active session, behind one HTTP entry point.

The editor registers sessions (thread id -> worktree) and activates the one it works on; the
entry point on `port` routes `/session/{id}/...` (websockets included) to that session's dev
server and wakes known sessions on demand. At most `max_active` dev servers run; starting
another one stops the least recently used. A crashed server is started again by the next
request (or `activate`), so a crash loop never burns the pod's CPU on its own.

With `standby` (default), one spare node process has already imported Astro (~140 MiB RSS);
the next start hands it the session's config, which roughly halves the time to first byte.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from webordinary.contracts.naming import is_thread_id
from webordinary.editor.previews import pages
from webordinary.editor.previews.devconfig import STATE_DIR_NAME, dev_config, dev_env, state_dir
from webordinary.editor.previews.devserver import (
    STALE_STANDBY_EXIT,
    DevServer,
    PreviewStartError,
    Standby,
    free_port,
)
from webordinary.editor.previews.links import escaping_links
from webordinary.editor.previews.lru import Recency, choose_evictions
from webordinary.editor.previews.metrics import (
    ACTIVE_SERVERS,
    CRASHES,
    EVICTIONS,
    REQUESTS,
    START_SECONDS,
    STARTS,
    WARM_STARTS,
    health_app,
)
from webordinary.editor.previews.proxy import UpstreamUnavailable, forward_http, forward_websocket
from webordinary.editor.previews.routing import (
    NotFoundRoute,
    RedirectRoute,
    host_allowed,
    parse_path,
    session_prefix,
)
from webordinary.editor.previews.scrub import scrub_paths

log = logging.getLogger(__name__)
PORT_RETRIES = 3


class UnknownSessionError(LookupError):
    """`activate` of a thread id that was never registered."""


class PreviewEvictedError(RuntimeError):
    """The server finished starting after its session had been evicted; it was stopped."""


@dataclass
class _Session:
    thread_id: str
    worktree: Path
    server: DevServer | None = None
    starting: asyncio.Task[DevServer] | None = None
    generation: int = 0
    last_error: PreviewStartError | None = None
    failed_at: float = 0.0
    crashes: int = 0
    restart_at: float = 0.0


class Previews:
    """Astro dev servers per session (LRU-capped) behind one router, plus health/metrics."""

    def __init__(
        self,
        sessions_dir: Path,
        *,
        port: int,
        metrics_port: int,
        max_active: int = 2,
        host: str = "0.0.0.0",
        allowed_hosts: Sequence[str] | None = None,
        node: str = "node",
        start_timeout: float = 60.0,
        stop_grace: float = 3.0,
        retry_after_failure: float = 10.0,
        refresh_seconds: int = 2,
        standby: bool = True,
        tmp: Path | None = None,
        restart_backoff: tuple[float, float] = (1.0, 30.0),
    ) -> None:
        if max_active < 1:
            raise ValueError(f"max_active must be >= 1, got {max_active}")
        self.sessions_dir = Path(sessions_dir).resolve()
        self.max_active = max_active
        self._host = host
        self._want_port = port
        self._want_metrics_port = metrics_port
        self._allowed_hosts = tuple(h.lower() for h in allowed_hosts) if allowed_hosts else None
        self._node = node
        self._start_timeout = start_timeout
        self._stop_grace = stop_grace
        self._retry_after_failure = retry_after_failure
        self._refresh = refresh_seconds
        self._standby_enabled = standby
        self._tmp = tmp
        self._backoff_first, self._backoff_max = restart_backoff
        self._standby: Standby | None = None
        self._sessions: dict[str, _Session] = {}
        self._recency = Recency()
        self._lock = asyncio.Lock()
        self._ready = False
        self._closed = False
        self._runners: list[web.AppRunner] = []
        self._client: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._bound: dict[str, int] = {}

    async def start(self) -> None:
        """Bind the router on `port` and health/metrics on `metrics_port`."""
        if self._runners or self._closed:
            raise RuntimeError("Previews.start() runs once, before close()")
        self._client = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        router = web.Application()
        router.router.add_route("*", "/{tail:.*}", self._handle)
        self._bound["router"] = await self._serve(router, self._want_port)
        self._bound["metrics"] = await self._serve(
            health_app(lambda: self._ready), self._want_metrics_port
        )
        self._spawn(self._refill_standby())

    async def _serve(self, app: web.Application, port: int) -> int:
        runner = web.AppRunner(app, shutdown_timeout=2.0)
        await runner.setup()
        self._runners.append(runner)
        await web.TCPSite(runner, self._host, port).start()
        address = runner.addresses[0]
        return int(address[1])

    @property
    def port(self) -> int:
        """The router's bound port (useful when constructed with port 0)."""
        return self._bound["router"]

    @property
    def metrics_port(self) -> int:
        return self._bound["metrics"]

    def register(self, thread_id: str, worktree: Path) -> None:
        """Make a session known; a changed worktree takes effect at its next start."""
        if not is_thread_id(thread_id):
            raise ValueError(f"invalid thread id {thread_id!r}")
        worktree = Path(worktree).resolve()
        if not worktree.is_dir():
            raise ValueError(f"worktree of session {thread_id!r} does not exist: {worktree}")
        session = self._sessions.get(thread_id)
        if session is None:
            self._sessions[thread_id] = _Session(thread_id, worktree)
        else:
            session.worktree = worktree

    async def activate(self, thread_id: str) -> None:
        """Ensure the session's dev server runs; return once it has answered a request."""
        session = self._sessions.get(thread_id)
        if session is None:
            raise UnknownSessionError(f"session {thread_id!r} is not registered")
        await self._ensure_running(session)

    def set_ready(self, ready: bool) -> None:
        self._ready = ready

    def sessions(self) -> dict[str, Path]:
        """Registered sessions and their worktrees."""
        return {tid: s.worktree for tid, s in self._sessions.items()}

    def active_sessions(self) -> list[str]:
        """Sessions with a dev server running or starting, least recently used first."""
        return self._recency.order()

    def is_running(self, thread_id: str) -> bool:
        session = self._sessions.get(thread_id)
        return bool(session and session.server and session.server.alive)

    def server_port(self, thread_id: str) -> int | None:
        """Loopback port of the session's running dev server."""
        session = self._sessions.get(thread_id)
        return session.server.port if session and session.server else None

    def server_pid(self, thread_id: str) -> int | None:
        """Process id (and process group) of the session's running dev server."""
        session = self._sessions.get(thread_id)
        return session.server.pid if session and session.server else None

    def standby_pid(self) -> int | None:
        """Process id of the warm spare (Astro imported, no session yet), if one is up."""
        spare = self._standby
        return spare.process.pid if spare is not None and spare.alive else None

    def log_path(self, thread_id: str) -> Path:
        return state_dir(self.sessions_dir, thread_id) / "dev.log"

    async def close(self) -> None:
        """Stop every dev server (SIGTERM, then SIGKILL), then the HTTP servers."""
        self._closed = True
        async with self._lock:
            servers = [s.server for s in self._sessions.values() if s.server is not None]
            starting = [s.starting for s in self._sessions.values() if s.starting is not None]
            for session in self._sessions.values():
                session.server = None
                session.generation += 1
                self._recency.discard(session.thread_id)
        for task in starting:
            task.cancel()
        await asyncio.gather(*starting, return_exceptions=True)
        await asyncio.gather(*(s.stop(self._stop_grace) for s in servers))
        self._update_gauge()
        spare, self._standby = self._standby, None
        if spare is not None:
            await spare.discard()
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        for bg in list(self._tasks):
            bg.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.close()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _update_gauge(self) -> None:
        ACTIVE_SERVERS.set(len(self._recency))

    async def _refill_standby(self) -> None:
        """Keep one warm spare (Astro imported) for the next start, when enabled."""
        if not self._standby_enabled or self._closed:
            return
        if self._standby is not None and self._standby.alive:
            return
        try:
            spare = await Standby.spawn(
                cwd=self.sessions_dir,
                state_root=self.sessions_dir / STATE_DIR_NAME,
                env=dev_env(os.environ, self._tmp),
                node=self._node,
            )
        except OSError as exc:
            # E.g. the state folder is not there yet (the editor creates it): try again soon.
            log.warning("no standby dev server process yet: %s", exc)
            if not self._closed:
                self._spawn(self._refill_later())
            return
        if self._closed or (self._standby is not None and self._standby.alive):
            await spare.discard()
            return
        self._standby = spare

    async def _refill_later(self, delay: float = 2.0) -> None:
        await asyncio.sleep(delay)
        await self._refill_standby()

    def _take_standby(self) -> Standby | None:
        spare, self._standby = self._standby, None
        if spare is not None and not spare.alive:
            self._spawn(spare.discard())
            return None
        return spare

    async def _ensure_running(self, session: _Session) -> DevServer:
        async with self._lock:
            if self._closed:
                raise RuntimeError("previews are closed")
            tid = session.thread_id
            self._recency.touch(tid)
            if session.server is not None and session.server.alive:
                return session.server
            task = session.starting
            if task is None or task.done() or task.get_name() != f"{tid}#{session.generation}":
                victims = self._make_room(tid)
                session.generation += 1
                task = asyncio.create_task(
                    self._start(session, session.generation, victims, task),
                    name=f"{tid}#{session.generation}",
                )
                task.add_done_callback(_retrieve)
                session.starting = task
            self._update_gauge()
        return await asyncio.shield(task)

    def _make_room(self, thread_id: str) -> list[DevServer]:
        """Detach the LRU sessions over the cap (caller holds the lock); return their servers."""
        victims: list[DevServer] = []
        for tid in choose_evictions(self._recency.order(), thread_id, self.max_active):
            victim = self._sessions[tid]
            self._recency.discard(tid)
            victim.generation += 1
            EVICTIONS.inc()
            log.info("preview of %s evicted to make room for %s", tid, thread_id)
            if victim.server is not None:
                victims.append(victim.server)
                victim.server = None
        return victims

    async def _start(
        self,
        session: _Session,
        generation: int,
        victims: list[DevServer],
        previous: asyncio.Task[DevServer] | None,
    ) -> DevServer:
        if victims:
            await asyncio.gather(*(v.stop(self._stop_grace) for v in victims))
        if previous is not None and not previous.done():
            await asyncio.wait([previous])
        tid = session.thread_id
        began = time.monotonic()
        try:
            server = await self._launch_ready(session)
        finally:
            if not self._closed:
                self._spawn(self._refill_standby())
        START_SECONDS.observe(time.monotonic() - began)
        async with self._lock:
            current = generation == session.generation and not self._closed
            if current:
                session.server = server
                session.last_error = None
                self._spawn(self._watch(session, server))
        if not current:
            await server.stop(self._stop_grace)
            STARTS.labels("evicted").inc()
            raise PreviewEvictedError(f"preview of {tid!r} was evicted while it started")
        STARTS.labels("ok").inc()
        log.info("preview of %s serves on port %d", tid, server.port)
        return server

    async def _launch_ready(self, session: _Session) -> DevServer:
        tid = session.thread_id
        state = state_dir(self.sessions_dir, tid)
        links = await asyncio.to_thread(escaping_links, session.worktree)
        if links:
            error = PreviewStartError(
                tid, "symlinks leading outside the site are not served",
                "These links point outside the site; remove them or copy the files in:\n"
                + "\n".join(links[:50]))
            await self._record_failure(session, error)
            raise error
        for attempt in range(PORT_RETRIES):
            config = dev_config(
                thread_id=tid,
                worktree=session.worktree,
                state=state,
                port=free_port(),
                allowed_hosts=self._allowed_hosts,
                modules=self.sessions_dir / "node_modules",
            )
            server = await self._from_standby(tid, state, config) if attempt == 0 else None
            warm = server is not None
            if server is None:
                server = await DevServer.launch(
                    thread_id=tid,
                    worktree=session.worktree,
                    state=state,
                    config=config,
                    env=dev_env(os.environ, self._tmp),
                    node=self._node,
                )
            try:
                await server.wait_ready(f"{session_prefix(tid)}/", self._start_timeout)
                if warm:
                    WARM_STARTS.inc()
                return server
            except PreviewStartError as exc:
                await server.stop(self._stop_grace)
                stale = warm and server.process.returncode == STALE_STANDBY_EXIT
                in_use = "already in use" in exc.log_tail
                if (stale or in_use) and attempt + 1 < PORT_RETRIES:
                    continue
                await self._record_failure(session, exc)
                raise
            except BaseException:
                await server.stop(self._stop_grace)
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _from_standby(
        self, thread_id: str, state: Path, config: dict[str, Any]
    ) -> DevServer | None:
        spare = self._take_standby()
        if spare is None:
            return None
        try:
            return await spare.assign(thread_id=thread_id, state=state, config=config)
        except (BrokenPipeError, ConnectionResetError):
            await spare.discard()
            return None

    async def _record_failure(self, session: _Session, exc: PreviewStartError) -> None:
        STARTS.labels("failed").inc()
        log.warning("%s\n%s", exc, exc.log_tail)
        async with self._lock:
            session.last_error = exc
            session.failed_at = time.monotonic()
            if session.server is None:
                self._recency.discard(session.thread_id)
            self._update_gauge()

    async def _watch(self, session: _Session, server: DevServer) -> None:
        """Notice a dev server that exits on its own: count it, free its slot, and start it
        again after a backoff (1 s, doubling up to 30 s; reset after a minute of uptime)."""
        code = await server.wait()
        if server.stopping:
            return
        CRASHES.inc()
        log.warning(
            "preview of %s exited with %s\n%s", session.thread_id, code, server.log_tail()
        )
        uptime = time.monotonic() - server.started_at
        async with self._lock:
            if session.server is not server:
                return
            session.server = None
            session.crashes = 1 if uptime > 60 else session.crashes + 1
            delay = min(self._backoff_max, self._backoff_first * 2 ** (session.crashes - 1))
            session.restart_at = time.monotonic() + delay
            self._update_gauge()
        await server.stop(0.5)
        if self._closed:
            return
        self._spawn(self._restart(session, session.generation, delay))

    async def _restart(self, session: _Session, generation: int, delay: float) -> None:
        await asyncio.sleep(delay)
        if self._closed or session.generation != generation or session.server is not None:
            return
        log.info("restarting the preview of %s (crash %d)", session.thread_id, session.crashes)
        await self._wake(session)

    async def _wake(self, session: _Session) -> None:
        with contextlib.suppress(Exception):
            await self._ensure_running(session)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        route = parse_path(request.raw_path)
        if isinstance(route, NotFoundRoute):
            return _html(404, pages.not_found_page(route.reason), "not_found")
        host = request.headers.get("Host", "")
        if not host_allowed(host, self._allowed_hosts):
            return _html(403, pages.forbidden_page(host), "forbidden")
        if isinstance(route, RedirectRoute):
            REQUESTS.labels("redirect").inc()
            return web.Response(status=308, headers={"Location": route.location})
        session = self._sessions.get(route.thread_id)
        if session is None:
            return _html(404, pages.not_found_page("No preview is known for this session"),
                         "not_found")
        server = session.server
        if server is not None and server.alive and self._client is not None:
            self._recency.touch(session.thread_id)
            websocket = request.headers.get("Upgrade", "").lower() == "websocket"
            try:
                if websocket:
                    REQUESTS.labels("websocket").inc()
                    return await forward_websocket(request, self._client, server.base_url,
                                                   scrub=self.sessions_dir)
                REQUESTS.labels("proxied").inc()
                return await forward_http(request, self._client, server.base_url,
                                          scrub=self.sessions_dir)
            except UpstreamUnavailable:
                REQUESTS.labels("upstream_unavailable").inc()
        return self._waking(session, request)

    def _waking(self, session: _Session, request: web.Request) -> web.Response:
        """A known session without a running server: start it, unless it has just failed."""
        since_failure = time.monotonic() - session.failed_at
        if session.last_error is not None and since_failure < self._retry_after_failure:
            wait = max(1, round(self._retry_after_failure - since_failure))
            tail = scrub_paths(session.last_error.log_tail, self.sessions_dir)
            page = pages.failed_page(session.thread_id, tail, wait)
            return _html(502, page, "failed", retry_after=wait)
        if request.headers.get("Upgrade", "").lower() == "websocket":
            # An open tab's HMR client pings until its server is back; letting the ping wake
            # the server would make tabs of evicted sessions evict each other forever.
            REQUESTS.labels("sleeping").inc()
            return web.Response(status=503, text="preview not running\n",
                                headers={"Retry-After": str(self._refresh)})
        waiting = session.restart_at - time.monotonic()
        if waiting > 0 and session.thread_id in self._recency:
            page = pages.restarting_page(session.thread_id, max(1, round(waiting)))
            return _html(503, page, "restarting", retry_after=max(1, round(waiting)))
        if not self._closed:
            self._spawn(self._wake(session))
        page = pages.starting_page(session.thread_id, self._refresh)
        return _html(503, page, "starting", retry_after=self._refresh)


def _html(status: int, body: str, outcome: str, retry_after: int | None = None) -> web.Response:
    REQUESTS.labels(outcome).inc()
    headers = {"Cache-Control": "no-store"}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return web.Response(status=status, text=body, content_type="text/html", headers=headers)


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Mark a start task's exception as seen: its waiters (if any) already got it."""
    if not task.cancelled():
        task.exception()
