"""The editor process: builds the adapters, starts up, runs the consumer, shuts down saved.

What a command does lives in `handlers` (one per kind), how commands are received and
answered in `consumer`; this module only wires them and owns start-up and shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, Protocol

from webordinary.editor.agent import Agents, preload
from webordinary.editor.builds import Builds
from webordinary.editor.consumer import Consumer, Leases
from webordinary.editor.credentials.client import helper_command
from webordinary.editor.handlers import Dispatcher, Policy, Ports
from webordinary.editor.journal import Journal
from webordinary.editor.ledger import Ledger
from webordinary.editor.sessions import (
    GitError,
    Identity,
    Sessions,
    copy_manifests,
    install_dependencies,
)
from webordinary.editor.settings import Config
from webordinary.editor.sqs import Attachments, Queues

log = logging.getLogger(__name__)


class PreviewsLike(Protocol):
    """What the worker needs from the previews package (webordinary.editor.previews)."""

    async def start(self) -> None: ...
    def register(self, thread_id: str, worktree: Path) -> None: ...
    async def activate(self, thread_id: str) -> None: ...
    def set_ready(self, ready: bool) -> None: ...
    async def close(self) -> None: ...


def _report_install(task: asyncio.Task[bool]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("node dependencies could not be installed: %s", task.exception())


class Background:
    """Fire-and-forget tasks that are cancelled at shutdown."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[None]] = set()

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def cancel(self) -> None:
        for task in self.tasks:
            task.cancel()


class PreviewStarter:
    """The preview port: register and start a session's dev server once node_modules exist."""

    def __init__(self, previews: PreviewsLike | None, builds: Builds,
                 background: Background) -> None:
        self.previews = previews
        self.builds = builds
        self.background = background

    def show(self, thread_id: str, worktree: Path) -> None:
        if self.previews is None:
            return
        previews = self.previews

        async def activate() -> None:
            try:
                with contextlib.suppress(Exception):
                    await self.builds.dependencies()
                previews.register(thread_id, worktree)
                await previews.activate(thread_id)
                log.info("preview of thread-%s is serving", thread_id)
            except Exception as exc:
                log.warning("preview of thread-%s did not start: %s", thread_id, exc)

        self.background.spawn(activate())


class Editor:
    """One editor process: owns the workspace, the queue consumer, the agents and previews."""

    def __init__(self, config: Config, queues: Queues,
                 previews: PreviewsLike | None = None) -> None:
        self.config = config
        self.settings = settings = config.settings
        self.queues = queues
        self.previews = previews
        self.workspace = config.workspace
        token = settings.git_token.get_secret_value() if settings.git_token else None
        proxied = bool(settings.credentials_url)
        self.sessions = Sessions(
            self.workspace, repository_url=config.env.repository_url,
            branch=config.env.repository_branch, token=None if proxied else token,
            identity=Identity(settings.git_author_name, settings.git_author_email),
            credential_helper=helper_command() if proxied else None,
            preview_writable=(".astro", "dist") if settings.supervisor_url else (),
        )
        self.agents = Agents(config)
        self.journal = Journal(self.workspace.journal)
        self.builds = self._builds(previews)
        self.background = Background()
        self.max_attempts = settings.max_attempts
        ports = Ports(
            git=self.sessions, agents=self.agents,
            previews=PreviewStarter(previews, self.builds, self.background),
            attachments=Attachments(config.env.aws_region,
                                    settings.s3_endpoint_url or config.env.sqs_endpoint_url),
            builds=self.builds,
            ledger=Ledger(self.workspace.ledger, config.env.environment),
        )
        policy = Policy(
            environment=config.env.environment,
            push_after_edit=config.env.push_after_edit,
            monthly_budget_usd=config.env.monthly_budget_usd,
            push_attempts=settings.push_attempts,
            push_backoff_seconds=settings.push_backoff_seconds,
            job_timeout_seconds=settings.job_timeout_seconds,
            build_timeout_seconds=settings.build_timeout_seconds,
            max_attachment_bytes=settings.max_attachment_bytes,
            max_attempts=lambda: self.max_attempts,
        )
        self.consumer = Consumer(
            queues, queues, self.journal, Dispatcher(ports, policy),
            leases=Leases(poll_wait_seconds=settings.poll_wait_seconds,
                          receive_visibility_seconds=settings.receive_visibility_seconds,
                          visibility_timeout_seconds=settings.visibility_timeout_seconds,
                          retry_backoff_seconds=settings.retry_backoff_seconds),
            environment=config.env.environment, max_attempts=lambda: self.max_attempts,
        )
        self.shutting_down = asyncio.Event()
        self.ready = asyncio.Event()
        self.deps: asyncio.Task[bool] | None = None

    def _builds(self, previews: PreviewsLike | None) -> Builds:
        """Builds run where customer code runs: the supervisor's container when there is one."""
        from webordinary.editor.supervisor.client import SupervisedBuilds, SupervisorClient

        if isinstance(previews, SupervisorClient):
            return SupervisedBuilds(self.workspace, previews)
        return Builds(self.workspace)

    async def _install(self) -> bool:
        """node_modules: in the supervisor's container when there is one (customer code)."""
        install = getattr(self.previews, "install", None)
        if install is None:
            return await install_dependencies(self.workspace)
        await copy_manifests(self.workspace)
        return bool(await install())

    async def run(self) -> None:
        """Start up, then serve until `shutdown()`; leaves everything committed and pushed."""
        started = time.monotonic()
        await self.startup()
        log.info("editor ready in %.2fs", time.monotonic() - started)
        warm = asyncio.create_task(asyncio.to_thread(preload))
        consumer = self.consumer
        tasks = [asyncio.create_task(consumer.poll(), name="poll"),
                 asyncio.create_task(consumer.heartbeat(), name="heartbeat"),
                 asyncio.create_task(consumer.process(), name="process")]
        stopper = asyncio.create_task(self.shutting_down.wait())
        await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                log.error("editor task %s failed", task.get_name(), exc_info=task.exception())
        await self._drain(tasks)
        warm.cancel()

    async def startup(self) -> None:
        await self.sessions.prepare()
        if self.settings.supervisor_url:
            self.workspace.share_with_previews()
        known = self.sessions.known()
        for thread in known:
            await self.sessions.recover(thread)
            sha = await self.sessions.commit(
                self.workspace.worktree(thread),
                "WIP (recovered): uncommitted changes found at editor start\n")
            if sha:
                log.warning("committed leftover changes of thread-%s as %s", thread, sha[:12])
        count = await self.queues.max_receive_count()
        if count:
            self.max_attempts = count
        if self.settings.npm_install:
            self.deps = asyncio.create_task(self._install())
            self.deps.add_done_callback(_report_install)
            self.builds.deps = self.deps
        if self.previews is not None:
            await self.previews.start()
            log.info("previews on port %s, health and metrics on port %s",
                     getattr(self.previews, "port", "?"),
                     getattr(self.previews, "metrics_port", "?"))
            self.background.spawn(self._open_previews(known))
        self.ready.set()

    async def _open_previews(self, known: list[str]) -> None:
        """Sessions become previewable, and the pod ready, once node_modules exist: a dev
        server started before that only fails."""
        assert self.previews is not None
        with contextlib.suppress(Exception):
            await self.builds.dependencies()
        for thread in known:
            self.previews.register(thread, self.workspace.worktree(thread))
        self.previews.set_ready(True)
        log.info("previews ready for %d known session(s)", len(known))

    def shutdown(self) -> None:
        """SIGTERM: stop taking work and interrupt the running job (it commits and reports)."""
        if not self.shutting_down.is_set():
            log.info("shutting down")
            self.shutting_down.set()
            self.consumer.stop()

    async def _drain(self, tasks: list[asyncio.Task[None]]) -> None:
        grace = self.settings.shutdown_grace_seconds
        deadline = time.monotonic() + grace
        if self.previews is not None:
            self.previews.set_ready(False)
        poll, heartbeat, process = tasks
        poll.cancel()
        self.consumer.stop()
        if self.consumer.current is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(process), max(1.0, grace * 0.6))
        process.cancel()
        await self.consumer.release_waiting()
        heartbeat.cancel()
        try:
            await asyncio.wait_for(self._save_all(), max(1.0, deadline - time.monotonic() - 2))
        except TimeoutError:
            log.error("could not save every session before the grace period ended")
        self.background.cancel()
        await self.agents.close()
        if self.previews is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.previews.close(), 5)
        if self.deps is not None:
            self.deps.cancel()
        log.info("editor stopped")

    async def _save_all(self) -> None:
        """Commit every session worktree and push every session branch (when there is a remote)."""
        remote = await self.sessions.has_remote()
        for thread in self.sessions.known():
            worktree = self.workspace.worktree(thread)
            try:
                await self.sessions.commit(
                    worktree, "WIP (shutdown): uncommitted changes at editor stop\n")
                if remote:
                    await self.sessions.publish(thread, attempts=self.settings.push_attempts,
                                                backoff=self.settings.push_backoff_seconds)
            except GitError as exc:
                log.error("could not save thread-%s: %s", thread, exc)
