"""The editor's main loop: poll, interrupt, run the job, commit, answer, acknowledge.

The poller runs all the time (also while a job runs), so a new message interrupts the running
job at once. A message is deleted only after its result is journaled and on the output queue.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from webordinary.contracts.messages import (
    Command,
    CommandType,
    Result,
    ResultError,
    ResultStatus,
    Timings,
    Usage,
)
from webordinary.contracts.naming import preview_path
from webordinary.editor import metrics
from webordinary.editor.agent import Agents, Ending, Outcome, preload
from webordinary.editor.journal import Journal
from webordinary.editor.planner import (
    Adopt,
    Reject,
    Replay,
    Run,
    build_report,
    commit_message,
    fit,
    plan,
    rejection,
    should_give_up,
    upload_path,
)
from webordinary.editor.sessions import GitError, Identity, Sessions, install_dependencies
from webordinary.editor.settings import Config
from webordinary.editor.sqs import Attachments, Queues, Received

log = logging.getLogger(__name__)


class PreviewsLike(Protocol):
    """What the worker needs from the previews package (webordinary.editor.previews)."""

    async def start(self) -> None: ...
    def register(self, thread_id: str, worktree: Path) -> None: ...
    async def activate(self, thread_id: str) -> None: ...
    def set_ready(self, ready: bool) -> None: ...
    async def close(self) -> None: ...


class Retry(Exception):
    """A transient failure with attempts left: leave the message for redelivery."""


@dataclass
class Job:
    """A command being worked on, with the queue message that carries it."""

    command: Command
    message: Received
    started_at: float = field(default_factory=time.time)
    stop: Ending | None = None
    stopped: asyncio.Event = field(default_factory=asyncio.Event)
    notes: list[str] = field(default_factory=list)
    interrupted_at: float | None = None
    by_shutdown: bool = False
    twins: list[Received] = field(default_factory=list)

    def adopt(self, message: Received) -> None:
        """The same command came again: a redelivery (new receipt) or a duplicate message."""
        if message.message_id == self.message.message_id:
            self.message = message
        elif all(t.message_id != message.message_id for t in self.twins):
            self.twins.append(message)

    def held(self) -> list[Received]:
        return [self.message, *self.twins]

    def interrupt(self, reason: Ending, *, shutdown: bool = False) -> None:
        if self.stop is None:
            self.stop = reason
            self.by_shutdown = shutdown
            self.interrupted_at = time.monotonic()
        self.stopped.set()


def stamp(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


def prompt_for(command: Command, uploads: list[str], missing: list[str] | None = None) -> str:
    """The customer's instruction, plus the files it names and the files it brought."""
    parts = [command.instruction.strip() or "Please review the site."]
    if command.context.files:
        parts.append("Files mentioned: " + ", ".join(command.context.files))
    if uploads:
        parts.append("Files attached to the email, saved in the site: " + ", ".join(uploads))
    if missing:
        parts.append("Attachments that could not be saved: " + "; ".join(missing))
    return "\n\n".join(parts)


def _report_install(task: asyncio.Task[bool]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("node dependencies could not be installed: %s", task.exception())


class Editor:
    """One editor process: owns the workspace, the queue consumer, the agents and previews."""

    def __init__(self, config: Config, queues: Queues,
                 previews: PreviewsLike | None = None) -> None:
        self.config = config
        self.settings = config.settings
        self.queues = queues
        self.previews = previews
        self.workspace = config.workspace
        token = self.settings.git_token.get_secret_value() if self.settings.git_token else None
        self.sessions = Sessions(
            self.workspace, repository_url=config.env.repository_url,
            branch=config.env.repository_branch, token=token,
            identity=Identity(self.settings.git_author_name, self.settings.git_author_email),
        )
        self.agents = Agents(config)
        self.attachments = Attachments(
            config.env.aws_region, self.settings.s3_endpoint_url or config.env.sqs_endpoint_url)
        self.journal = Journal(self.workspace.journal)
        self.inbox: asyncio.Queue[Job] = asyncio.Queue()
        self.waiting: list[Job] = []
        self.current: Job | None = None
        self.max_attempts = self.settings.max_attempts
        self.shutting_down = asyncio.Event()
        self.ready = asyncio.Event()
        self.deps: asyncio.Task[bool] | None = None
        self._background: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """Start up, then serve until `shutdown()`; leaves everything committed and pushed."""
        started = time.monotonic()
        await self.startup()
        log.info("editor ready in %.2fs", time.monotonic() - started)
        warm = asyncio.create_task(asyncio.to_thread(preload))
        tasks = [asyncio.create_task(self._poll(), name="poll"),
                 asyncio.create_task(self._heartbeat(), name="heartbeat"),
                 asyncio.create_task(self._process(), name="process")]
        stopper = asyncio.create_task(self.shutting_down.wait())
        await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                log.error("editor task %s failed", task.get_name(), exc_info=task.exception())
        await self._drain(tasks)
        warm.cancel()

    async def startup(self) -> None:
        await self.sessions.prepare()
        known = self.sessions.known()
        for thread in known:
            sha = await self.sessions.commit(
                self.workspace.worktree(thread),
                "WIP (recovered): uncommitted changes found at editor start\n")
            if sha:
                log.warning("committed leftover changes of thread-%s as %s", thread, sha[:12])
        count = await self.queues.max_receive_count()
        if count:
            self.max_attempts = count
        if self.settings.npm_install:
            self.deps = asyncio.create_task(install_dependencies(self.workspace))
            self.deps.add_done_callback(_report_install)
        if self.previews is not None:
            await self.previews.start()
            log.info("previews on port %s, health and metrics on port %s",
                     getattr(self.previews, "port", "?"),
                     getattr(self.previews, "metrics_port", "?"))
            self._spawn(self._open_previews(known))
        self.ready.set()

    async def _dependencies(self) -> None:
        """Wait for node_modules (instant on a warm volume); a failed install was logged."""
        if self.deps is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.deps)

    async def _open_previews(self, known: list[str]) -> None:
        """Sessions become previewable, and the pod ready, once node_modules exist: a dev
        server started before that only fails."""
        assert self.previews is not None
        await self._dependencies()
        for thread in known:
            self.previews.register(thread, self.workspace.worktree(thread))
        self.previews.set_ready(True)
        log.info("previews ready for %d known session(s)", len(known))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def shutdown(self) -> None:
        """SIGTERM: stop taking work and interrupt the running job (it commits and reports)."""
        if not self.shutting_down.is_set():
            log.info("shutting down")
            self.shutting_down.set()
            if self.current is not None:
                self.current.interrupt(Ending.INTERRUPTED, shutdown=True)

    async def _drain(self, tasks: list[asyncio.Task[None]]) -> None:
        grace = self.settings.shutdown_grace_seconds
        deadline = time.monotonic() + grace
        if self.previews is not None:
            self.previews.set_ready(False)
        poll, heartbeat, process = tasks
        poll.cancel()
        if self.current is not None:
            self.current.interrupt(Ending.INTERRUPTED, shutdown=True)
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(process), max(1.0, grace * 0.6))
        process.cancel()
        while not self.inbox.empty():
            job = self.inbox.get_nowait()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.queues.extend(job.message.receipt, 0), 3)
        heartbeat.cancel()
        try:
            await asyncio.wait_for(self._save_all(), max(1.0, deadline - time.monotonic() - 2))
        except TimeoutError:
            log.error("could not save every session before the grace period ended")
        for task in self._background:
            task.cancel()
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
                    await self.sessions.push(thread)
                    log.info("pushed thread-%s", thread)
            except GitError as exc:
                log.error("could not save thread-%s: %s", thread, exc)

    async def _poll(self) -> None:
        """Long-poll continuously; hand new commands over and interrupt the running one."""
        wait = self.settings.poll_wait_seconds
        visibility = self.settings.receive_visibility_seconds
        while not self.shutting_down.is_set():
            if not self.inbox.empty():
                await asyncio.sleep(0.05)
                continue
            try:
                received = await self.queues.receive(wait, visibility)
            except Exception as exc:
                log.warning("receive failed: %s", exc)
                await asyncio.sleep(1)
                continue
            for message in received:
                if self.shutting_down.is_set():
                    await self.queues.extend(message.receipt, 0)
                    continue
                try:
                    await self._accept(message)
                except Exception:
                    log.exception("could not handle message %s; it will come back",
                                  message.message_id)

    async def _accept(self, message: Received) -> None:
        running = self.current.command.command_id if self.current is not None else None
        decision = plan(message.body, message.message_id, self.journal.get, running)
        if isinstance(decision, Reject):
            log.warning("rejected message %s: %s", message.message_id, decision.message)
            await self._answer(rejection(decision, self.config.env.environment), message,
                               record=False, kind="invalid")
        elif isinstance(decision, Replay):
            log.info("command %s was answered before; replaying its result",
                     decision.result.command_id)
            await self._answer(decision.result, message, record=False, kind=None)
        elif isinstance(decision, Adopt):
            log.warning("running command %s was delivered again", decision.command.command_id)
            await self.queues.extend(message.receipt, self.settings.visibility_timeout_seconds)
            if self.current is not None:
                self.current.adopt(message)
        elif isinstance(decision, Run):
            await self.queues.extend(message.receipt, self.settings.visibility_timeout_seconds)
            twin = next((j for j in self.waiting
                         if j.command.command_id == decision.command.command_id), None)
            if twin is not None:
                twin.adopt(message)
                return
            job = Job(decision.command, message)
            self.waiting.append(job)
            await self.inbox.put(job)
            if self.current is not None:
                log.info("new command %s interrupts %s", decision.command.command_id,
                         self.current.command.command_id)
                self.current.interrupt(Ending.INTERRUPTED)

    async def _heartbeat(self) -> None:
        """Keep held messages invisible while they wait or run."""
        visibility = self.settings.visibility_timeout_seconds
        while True:
            await asyncio.sleep(max(1.0, visibility / 3))
            held = [m for job in self.waiting for m in job.held()]
            if self.current is not None:
                held.extend(self.current.held())
            for message in held:
                try:
                    await self.queues.extend(message.receipt, visibility)
                    log.info("extended the lease of message %s by %ss", message.message_id,
                             visibility)
                except Exception as exc:
                    log.warning("could not extend visibility of %s: %s", message.message_id, exc)

    async def _process(self) -> None:
        while not self.shutting_down.is_set():
            job = await self.inbox.get()
            if self.shutting_down.is_set():
                await self.inbox.put(job)
                return
            self.waiting.remove(job)
            self.current = job
            metrics.BUSY.set(1)
            try:
                await self._execute(job)
            except Exception:
                # Journaled before sending: the redelivered message is answered from the journal.
                log.exception("could not answer %s; it will be redelivered",
                              job.command.command_id)
            finally:
                self.current = None
                metrics.BUSY.set(0)

    async def _execute(self, job: Job) -> None:
        command = job.command
        answered = self.journal.get(command.command_id)
        if answered is not None:
            await self._answer(answered, job.message, record=False, kind=None)
            return
        log.info("running %s %s for thread-%s", command.type.value, command.command_id,
                 command.session_id)
        try:
            result = await self._perform(job)
        except Retry as retry:
            metrics.RETRIES.inc()
            log.warning("command %s failed (attempt %d of %d), left for redelivery: %s",
                        command.command_id, job.message.receive_count, self.max_attempts, retry)
            with contextlib.suppress(Exception):
                await self.queues.extend(job.message.receipt, self.settings.retry_backoff_seconds)
                for twin in job.twins:
                    await self.queues.delete(twin.receipt)
            return
        except Exception as exc:
            log.exception("command %s crashed", command.command_id)
            result = self._result(job, ResultStatus.FAILED, summary="The edit failed.",
                                  error=ResultError(reason="editor_error", message=str(exc)))
        await self._answer(result, job.message, record=True, kind=command.type.value)
        for twin in job.twins:
            with contextlib.suppress(Exception):
                await self.queues.delete(twin.receipt)
        metrics.JOB_SECONDS.labels(command.type.value).observe(time.time() - job.started_at)

    async def _answer(self, result: Result, message: Received, *, record: bool,
                      kind: str | None) -> None:
        """Journal, publish, then acknowledge: a crash in between only causes a replay.

        Rejections are not journaled: they are deterministic, and a command id that came with
        a broken envelope must stay usable for a corrected command.
        """
        if record:
            self.journal.put(result)
        await self.queues.send(result)
        await self.queues.delete(message.receipt)
        if kind is None:
            metrics.REPLAYS.inc()
        else:
            metrics.COMMANDS.labels(kind, result.status.value).inc()
        log.info("answered %s: %s", result.command_id, result.status.value)

    def _result(self, job: Job, status: ResultStatus, *, summary: str = "",
                files: list[str] | None = None, commit: str | None = None,
                usage: Usage | None = None, error: ResultError | None = None) -> Result:
        finished = time.time()
        if job.notes:
            summary = "\n\n".join([summary, "Note: " + "; ".join(job.notes)]).strip()
        summary, files = fit(summary, files or [])
        return Result(
            command_id=job.command.command_id, session_id=job.command.session_id, status=status,
            summary=summary, files_changed=files or [], commit=commit,
            preview_path=preview_path(job.command.session_id),
            timings=Timings(received_at=stamp(job.message.received_at),
                            started_at=stamp(job.started_at), finished_at=stamp(finished),
                            duration_ms=int((finished - job.started_at) * 1000)),
            usage=usage or Usage(), error=error, environment=self.config.env.environment,
        )

    async def _perform(self, job: Job) -> Result:
        job.started_at = time.time()
        worktree = await self.sessions.worktree(job.command.session_id)
        log.info("worktree %s ready", worktree.name)
        self._preview(job.command.session_id, worktree)
        before = await self.sessions.head(worktree)
        kind = job.command.type
        if kind is CommandType.EDIT:
            return await self._edit(job, worktree, before)
        if kind is CommandType.BUILD:
            return await self._build(job, worktree)
        if kind is CommandType.COMMIT:
            return await self._commit(job, worktree, before)
        return await self._push(job, worktree, before)

    def _preview(self, thread_id: str, worktree: Path) -> None:
        """Register the session's preview and start its dev server, in the background."""
        if self.previews is None:
            return
        previews = self.previews

        async def activate() -> None:
            try:
                await self._dependencies()
                previews.register(thread_id, worktree)
                await previews.activate(thread_id)
                log.info("preview of thread-%s is serving", thread_id)
            except Exception as exc:
                log.warning("preview of thread-%s did not start: %s", thread_id, exc)

        self._spawn(activate())

    async def _save_uploads(self, job: Job, worktree: Path) -> list[str]:
        """Write attachments under public/uploads/; unreachable ones become notes, not silence."""
        saved = []
        for attachment in job.command.attachments:
            target = upload_path(worktree, attachment.filename)
            if attachment.content_base64 is not None:
                data = base64.b64decode(attachment.content_base64, validate=True)
            elif attachment.s3_uri is not None:
                try:
                    data = await self.attachments.fetch(attachment.s3_uri,
                                                        self.settings.max_attachment_bytes)
                except Exception as exc:
                    log.warning("attachment %s not fetched: %s", attachment.filename, exc)
                    job.notes.append(f"{attachment.filename} could not be fetched ({exc})")
                    continue
            else:
                job.notes.append(f"{attachment.filename} arrived without content")
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            saved.append(str(target.relative_to(worktree)))
        return saved

    async def _edit(self, job: Job, worktree: Path, before: str) -> Result:
        command = job.command
        try:
            uploads = await self._save_uploads(job, worktree)
        except (ValueError, OSError) as exc:
            return self._result(job, ResultStatus.REJECTED, summary=f"Attachment refused: {exc}",
                                error=ResultError(reason="invalid_attachment", message=str(exc)))
        if job.stop is not None:
            outcome = Outcome(Ending.INTERRUPTED)
        else:
            agent = await self.agents.get(command.session_id, worktree)
            run = asyncio.create_task(
                agent.run(prompt_for(command, uploads, job.notes),
                          self.settings.job_timeout_seconds))
            watcher = asyncio.create_task(job.stopped.wait())
            await asyncio.wait({run, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if not run.done():
                agent.interrupt(job.stop or Ending.INTERRUPTED)
            watcher.cancel()
            outcome = await run
            if job.interrupted_at is not None:
                metrics.INTERRUPT_SECONDS.observe(time.monotonic() - job.interrupted_at)
        return await self._conclude(job, worktree, before, outcome)

    async def _conclude(self, job: Job, worktree: Path, before: str, outcome: Outcome) -> Result:
        command = job.command
        wip = {Ending.COMPLETED: None, Ending.INTERRUPTED: "interrupted",
               Ending.TIMEOUT: "timed out", Ending.FAILED: "failed"}[outcome.ending]
        if outcome.ending is Ending.INTERRUPTED and job.by_shutdown:
            wip = "editor stopped"
        sha = await self.sessions.commit(
            worktree, commit_message(command, outcome.summary, wip=wip)) or before
        files = await self.sessions.changed_files(worktree, before)
        if outcome.ending is Ending.COMPLETED:
            return self._result(job, ResultStatus.COMPLETED, summary=outcome.summary,
                                files=files, commit=sha, usage=outcome.usage)
        if outcome.ending is Ending.INTERRUPTED:
            why = ("The editor was stopped (restart or scale-down)" if job.by_shutdown
                   else "Interrupted by a newer message")
            summary = f"{why}; the changes made so far are saved in a work-in-progress commit."
            if outcome.summary:
                summary += f"\n\n{outcome.summary}"
            return self._result(job, ResultStatus.INTERRUPTED, summary=summary, files=files,
                                commit=sha, usage=outcome.usage)
        if outcome.ending is Ending.FAILED and outcome.transient and not should_give_up(
                job.message.receive_count, self.max_attempts):
            raise Retry(outcome.error or "agent failure")
        reason = "timeout" if outcome.ending is Ending.TIMEOUT else "agent_error"
        message = outcome.error or f"the job took longer than {self.settings.job_timeout_seconds}s"
        return self._result(job, ResultStatus.FAILED, summary=f"The edit failed: {message}",
                            files=files, commit=sha, usage=outcome.usage,
                            error=ResultError(reason=reason, message=message))

    async def _commit(self, job: Job, worktree: Path, before: str) -> Result:
        sha = await self.sessions.commit(worktree, commit_message(job.command, ""))
        files = await self.sessions.changed_files(worktree, before)
        summary = "Committed the pending changes." if sha else "Nothing to commit."
        return self._result(job, ResultStatus.COMPLETED, summary=summary, files=files,
                            commit=sha or before)

    async def _push(self, job: Job, worktree: Path, before: str) -> Result:
        sha = await self.sessions.commit(worktree, commit_message(job.command, "")) or before
        files = await self.sessions.changed_files(worktree, before)
        if not await self.sessions.has_remote():
            return self._result(job, ResultStatus.FAILED, summary="There is no remote to push to.",
                                commit=sha, files=files,
                                error=ResultError(reason="no_remote", message="no git remote"))
        try:
            await self.sessions.push(job.command.session_id)
        except GitError as exc:
            if not should_give_up(job.message.receive_count, self.max_attempts):
                raise Retry(str(exc)) from exc
            return self._result(job, ResultStatus.FAILED, summary="The push failed.",
                                commit=sha, files=files,
                                error=ResultError(reason="push_failed", message=str(exc)))
        return self._result(job, ResultStatus.COMPLETED, files=files, commit=sha,
                            summary=f"Pushed {worktree.name} to the repository.")

    async def _build(self, job: Job, worktree: Path) -> Result:
        if self.deps is not None:
            try:
                await asyncio.shield(self.deps)
            except Exception as exc:
                return self._result(job, ResultStatus.FAILED, summary="Dependencies failed.",
                                    error=ResultError(reason="dependencies", message=str(exc)))
        process = await asyncio.create_subprocess_exec(
            "npm", "run", "build", cwd=str(worktree),
            env={**os.environ, "TMPDIR": str(self.workspace.tmp),
                 "ASTRO_TELEMETRY_DISABLED": "1", "WEBORDINARY_GIT_TOKEN": ""},
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, start_new_session=True,
        )
        communicate = asyncio.create_task(process.communicate())
        watcher = asyncio.create_task(job.stopped.wait())
        await asyncio.wait({communicate, watcher}, timeout=self.settings.build_timeout_seconds,
                           return_when=asyncio.FIRST_COMPLETED)
        watcher.cancel()
        if not communicate.done():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, 9)
            await communicate
            status = ResultStatus.INTERRUPTED if job.stop else ResultStatus.FAILED
            reason = "interrupted" if job.stop else "timeout"
            return self._result(job, status, summary=f"The build was stopped ({reason}).",
                                error=None if job.stop else ResultError(
                                    reason="timeout", message="the build took too long"))
        output = communicate.result()[0].decode(errors="replace")
        if process.returncode:
            tail = build_report(output)
            return self._result(job, ResultStatus.FAILED, summary=f"The build failed:\n{tail}",
                                error=ResultError(reason="build_failed", message=tail))
        return self._result(job, ResultStatus.COMPLETED, summary="The site builds without errors.")
