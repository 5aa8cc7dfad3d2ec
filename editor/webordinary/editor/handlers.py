"""One handler per command kind. Each takes its ports and returns the command's Result.

Handlers never touch the queues: the consumer decides when a command runs, interrupts it,
and sends what the handler returns.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from webordinary.contracts.messages import (
    Command,
    CommandType,
    Push,
    PushState,
    Result,
    ResultError,
    ResultStatus,
    Usage,
)
from webordinary.editor import delivery, metrics
from webordinary.editor.agent import Ending, Outcome
from webordinary.editor.ledger import budget_message, over_budget
from webordinary.editor.planner import (
    build_report,
    commit_message,
    should_give_up,
    summary_from_commit,
    upload_path,
)
from webordinary.editor.ports import (
    AgentPort,
    AttachmentPort,
    BuildPort,
    GitPort,
    LedgerPort,
    PreviewPort,
)
from webordinary.editor.results import Facts, assemble
from webordinary.editor.sqs import Received

log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class Policy:
    """The settings handlers act on."""

    environment: str | None
    push_after_edit: bool = True
    push_attempts: int = 3
    push_backoff_seconds: float = 1.0
    monthly_budget_usd: float | None = None
    job_timeout_seconds: float = 900.0
    build_timeout_seconds: float = 300.0
    max_attachment_bytes: int = 25 * 2**20
    max_attempts: Callable[[], int] = lambda: 3


@dataclass
class Ports:
    git: GitPort
    agents: AgentPort
    previews: PreviewPort
    attachments: AttachmentPort
    builds: BuildPort
    ledger: LedgerPort


class Handler(Protocol):
    async def __call__(self, job: Job, worktree: Path, before: str) -> Result: ...


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


class Base:
    def __init__(self, ports: Ports, policy: Policy) -> None:
        self.ports = ports
        self.policy = policy

    def result(self, job: Job, status: ResultStatus, *, summary: str = "",
               files: list[str] | None = None, commit: str | None = None,
               usage: Usage | None = None, error: ResultError | None = None,
               push: Push | None = None) -> Result:
        facts = Facts(job.command, self.policy.environment, job.message.received_at,
                      job.started_at, tuple(job.notes))
        return assemble(facts, status, time.time(), summary=summary, files=files,
                        commit=commit, usage=usage, error=error, push=push)

    async def publish(self, thread_id: str) -> Push:
        return await self.ports.git.publish(thread_id, attempts=self.policy.push_attempts,
                                            backoff=self.policy.push_backoff_seconds)


class EditHandler(Base):
    """Save the attachments, run the agent (interruptible), commit what it did."""

    async def __call__(self, job: Job, worktree: Path, before: str) -> Result:
        command = job.command
        if job.message.receive_count > 1:
            done = await self.ports.git.completed_commit(worktree, command.command_id)
            if done is not None:
                # The agent finished and its work was committed before the editor stopped:
                # deliver that instead of running the agent again.
                sha, message = done
                log.info("command %s was completed as %s before a restart", command.command_id,
                         sha[:12])
                files = await self.ports.git.changed_files(worktree, f"{sha}~1")
                return await self._deliver(job, summary_from_commit(message), files, sha,
                                           Usage())
        spent = self.ports.ledger.spent()
        if over_budget(spent, self.policy.monthly_budget_usd):
            assert self.policy.monthly_budget_usd is not None
            metrics.BUDGET_REFUSALS.labels(self.policy.environment or "").inc()
            message = budget_message(spent, self.policy.monthly_budget_usd, datetime.now(UTC))
            log.warning("edit %s refused: monthly budget used up (%.2f of %.2f USD)",
                        command.command_id, spent, self.policy.monthly_budget_usd)
            return self.result(job, ResultStatus.REJECTED, summary=f"Not started: {message}.",
                               error=ResultError(reason="budget_exceeded", message=message))
        try:
            uploads = await self._save_uploads(job, worktree)
        except (ValueError, OSError) as exc:
            return self.result(job, ResultStatus.REJECTED, summary=f"Attachment refused: {exc}",
                               error=ResultError(reason="invalid_attachment", message=str(exc)))
        if job.stop is not None:
            outcome = Outcome(Ending.INTERRUPTED)
        else:
            agent = await self.ports.agents.get(command.session_id, worktree)
            run = asyncio.create_task(
                agent.run(prompt_for(command, uploads, job.notes),
                          self.policy.job_timeout_seconds))
            watcher = asyncio.create_task(job.stopped.wait())
            await asyncio.wait({run, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if not run.done():
                agent.interrupt(job.stop or Ending.INTERRUPTED)
            watcher.cancel()
            outcome = await run
            self.ports.ledger.record(outcome.usage)
            log.info("agent run for %s: %d input tokens, %d output tokens, US$%.4f",
                     command.command_id, outcome.usage.input_tokens,
                     outcome.usage.output_tokens, outcome.usage.cost_usd or 0.0)
            if job.interrupted_at is not None:
                metrics.INTERRUPT_SECONDS.observe(time.monotonic() - job.interrupted_at)
        return await self._conclude(job, worktree, before, outcome)

    async def _save_uploads(self, job: Job, worktree: Path) -> list[str]:
        """Write attachments under public/uploads/; unreachable ones become notes, not silence."""
        saved = []
        for attachment in job.command.attachments:
            target = upload_path(worktree, attachment.filename)
            if attachment.content_base64 is not None:
                data = base64.b64decode(attachment.content_base64, validate=True)
            elif attachment.s3_uri is not None:
                try:
                    data = await self.ports.attachments.fetch(
                        attachment.s3_uri, self.policy.max_attachment_bytes)
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

    async def _conclude(self, job: Job, worktree: Path, before: str, outcome: Outcome) -> Result:
        command = job.command
        git = self.ports.git
        wip = {Ending.COMPLETED: None, Ending.INTERRUPTED: "interrupted",
               Ending.TIMEOUT: "timed out", Ending.FAILED: "failed"}[outcome.ending]
        if outcome.ending is Ending.INTERRUPTED and job.by_shutdown:
            wip = "editor stopped"
        log.info("committing the work of %s (%s)", command.command_id, outcome.ending.value)
        sha = await git.commit(worktree, commit_message(command, outcome.summary, wip=wip))
        files = await git.changed_files(worktree, before)
        if outcome.ending is Ending.COMPLETED:
            return await self._deliver(job, outcome.summary, files, sha, outcome.usage)
        if outcome.ending is Ending.FAILED and outcome.transient and not should_give_up(
                job.message.receive_count, self.policy.max_attempts()):
            raise Retry(outcome.error or "agent failure")
        saved = stopped_work(sha)
        if outcome.ending is Ending.INTERRUPTED:
            why = ("The editor was restarted (maintenance or a quiet period) before it was "
                   "done." if job.by_shutdown
                   else "A newer message arrived, so we stopped to handle that one.")
            return self.result(job, ResultStatus.INTERRUPTED, summary=f"{why} {saved}",
                               files=files, commit=sha, usage=outcome.usage)
        reason = "timeout" if outcome.ending is Ending.TIMEOUT else "agent_error"
        message = outcome.error or f"the job took longer than {self.policy.job_timeout_seconds}s"
        return self.result(job, ResultStatus.FAILED, summary=f"The edit failed: {message} {saved}",
                           files=files, commit=sha, usage=outcome.usage,
                           error=ResultError(reason=reason, message=message))

    async def _deliver(self, job: Job, summary: str, files: list[str], sha: str | None,
                       usage: Usage) -> Result:
        """A completed edit: push the session branch (when enabled), then say what happened."""
        thread = job.command.session_id
        push: Push | None = None
        status = ResultStatus.COMPLETED
        error = None
        if not self.policy.push_after_edit:
            push = Push(state=PushState.DISABLED)
        elif await self.ports.git.has_remote():
            push = await self.publish(thread)
            worktree = await self.ports.git.worktree(thread)
            if sha is not None and push.integrated is not None:
                sha = await self.ports.git.head(worktree)  # rebased or merged: the new tip
            if push.state is PushState.CONFLICT:
                status = ResultStatus.CONFLICT
                error = ResultError(reason="push_conflict", message=push.error or "conflict")
            elif push.state is PushState.FAILED:
                job.notes.append(
                    "the change is saved here but could not be sent to your repository yet "
                    f"({delivery.plain(push.error)}); it will be sent with your next change")
        return self.result(job, status, summary=summary, files=files, commit=sha, usage=usage,
                           error=error, push=push)


def stopped_work(sha: str | None) -> str:
    """What an unfinished edit left: a named work-in-progress commit, or nothing."""
    if sha is None:
        return "Nothing had been changed yet."
    return f"The changes made so far are saved as work-in-progress commit {sha[:12]}."


class CommitHandler(Base):
    async def __call__(self, job: Job, worktree: Path, before: str) -> Result:
        git = self.ports.git
        sha = await git.commit(worktree, commit_message(job.command, ""))
        files = await git.changed_files(worktree, before)
        summary = "Committed the pending changes." if sha else "Nothing to commit."
        return self.result(job, ResultStatus.COMPLETED, summary=summary, files=files,
                           commit=sha)


class PushHandler(Base):
    async def __call__(self, job: Job, worktree: Path, before: str) -> Result:
        git = self.ports.git
        sha = await git.commit(worktree, commit_message(job.command, ""))
        files = await git.changed_files(worktree, before)
        if not await git.has_remote():
            return self.result(job, ResultStatus.FAILED, summary="There is no remote to push to.",
                               commit=sha, files=files,
                               error=ResultError(reason="no_remote", message="no git remote"))
        push = await self.publish(job.command.session_id)
        head = await git.head(worktree)
        if push.state is PushState.CONFLICT:
            return self.result(job, ResultStatus.CONFLICT, files=files, commit=head, push=push,
                               summary=f"Your work is saved on the branch {push.branch}.",
                               error=ResultError(reason="push_conflict",
                                                 message=push.error or "conflict"))
        if push.state is PushState.FAILED:
            return self.result(job, ResultStatus.FAILED, summary="The push failed.",
                               commit=sha, files=files, push=push,
                               error=ResultError(reason="push_failed",
                                                 message=push.error or "git push failed"))
        return self.result(job, ResultStatus.COMPLETED, files=files, commit=head, push=push,
                           summary=f"Pushed {worktree.name} to the repository.")


class BuildHandler(Base):
    async def __call__(self, job: Job, worktree: Path, before: str) -> Result:
        try:
            await self.ports.builds.dependencies()
        except Exception as exc:
            return self.result(job, ResultStatus.FAILED, summary="Dependencies failed.",
                               error=ResultError(reason="dependencies", message=str(exc)))
        done = await self.ports.builds.build(worktree, job.stopped,
                                             self.policy.build_timeout_seconds)
        if done is None:
            status = ResultStatus.INTERRUPTED if job.stop else ResultStatus.FAILED
            reason = "interrupted" if job.stop else "timeout"
            return self.result(job, status, summary=f"The build was stopped ({reason}).",
                               error=None if job.stop else ResultError(
                                   reason="timeout", message="the build took too long"))
        code, output = done
        if code:
            tail = build_report(output)
            return self.result(job, ResultStatus.FAILED, summary=f"The build failed:\n{tail}",
                               error=ResultError(reason="build_failed", message=tail))
        return self.result(job, ResultStatus.COMPLETED, summary="The site builds without errors.")


class Dispatcher:
    """Prepares the session's worktree and preview, then runs the command kind's handler."""

    def __init__(self, ports: Ports, policy: Policy) -> None:
        self.ports = ports
        self.handlers: dict[CommandType, Handler] = {
            CommandType.EDIT: EditHandler(ports, policy),
            CommandType.BUILD: BuildHandler(ports, policy),
            CommandType.COMMIT: CommitHandler(ports, policy),
            CommandType.PUSH: PushHandler(ports, policy),
        }

    async def __call__(self, job: Job) -> Result:
        job.started_at = time.time()
        worktree = await self.ports.git.worktree(job.command.session_id)
        log.info("worktree %s ready", worktree.name)
        self.ports.previews.show(job.command.session_id, worktree)
        before = await self.ports.git.head(worktree)
        return await self.handlers[job.command.type](job, worktree, before)
