"""What the consumer and the command handlers need from the outside world, as protocols.

The real adapters are `sessions.Sessions` (git), `agent.Agents` (Claude Code), `sqs.Queues`
(input and output queues), `journal.Journal`, `builds.Builds` (npm) and the previews package;
unit tests pass fakes with the same shape.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Protocol

from webordinary.contracts.messages import Push, Result, Usage
from webordinary.editor.agent import Ending, Outcome
from webordinary.editor.sqs import Received


class GitPort(Protocol):
    """The session worktrees and their branches."""

    async def worktree(self, thread_id: str) -> Path: ...
    async def head(self, worktree: Path) -> str: ...
    async def commit(self, worktree: Path, message: str) -> str | None: ...
    async def changed_files(self, worktree: Path, since: str) -> list[str]: ...
    async def has_remote(self) -> bool: ...
    async def publish(self, thread_id: str, *, attempts: int = 3,
                      backoff: float = 1.0) -> Push: ...
    async def completed_commit(self, worktree: Path,
                               command_id: str) -> tuple[str, str] | None: ...


class AgentRun(Protocol):
    """One session's conversation: one prompt at a time, interruptible."""

    async def run(self, prompt: str, limit: float) -> Outcome: ...
    def interrupt(self, reason: Ending = Ending.INTERRUPTED) -> None: ...


class AgentPort(Protocol):
    async def get(self, thread_id: str, worktree: Path) -> AgentRun: ...


class PreviewPort(Protocol):
    """Make a session's preview available (in the background; never fails the command)."""

    def show(self, thread_id: str, worktree: Path) -> None: ...


class AttachmentPort(Protocol):
    async def fetch(self, uri: str, max_bytes: int) -> bytes: ...


class BuildPort(Protocol):
    """`npm run build` in a worktree; None when stopped (by `stop`) or out of time."""

    async def dependencies(self) -> None: ...
    async def build(self, worktree: Path, stop: asyncio.Event,
                    limit: float) -> tuple[int, str] | None: ...


class InputPort(Protocol):
    """The environment's input queue."""

    async def receive(self, wait_seconds: int, visibility: int) -> list[Received]: ...
    async def delete(self, receipt: str) -> None: ...
    async def extend(self, receipt: str, seconds: int) -> None: ...


class ResultPort(Protocol):
    """Where answers go (the output queue)."""

    async def send(self, result: Result) -> None: ...


class JournalPort(Protocol):
    """commandId -> the answer given, kept across restarts."""

    def get(self, command_id: str) -> Result | None: ...
    def put(self, result: Result) -> None: ...


class LedgerPort(Protocol):
    """This environment's spending this month."""

    def spent(self) -> float: ...
    def record(self, usage: Usage) -> None: ...
