"""Pure result assembly: what a command's answer says, from what happened."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from webordinary.contracts.messages import (
    Command,
    Push,
    Result,
    ResultError,
    ResultStatus,
    Timings,
    Usage,
)
from webordinary.contracts.naming import preview_path
from webordinary.editor.planner import fit


@dataclass(frozen=True)
class Facts:
    """When a command arrived and ran, and what the editor noted on the way."""

    command: Command
    environment: str | None
    received_at: float
    started_at: float
    notes: tuple[str, ...] = ()


def stamp(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


def assemble(
    facts: Facts,
    status: ResultStatus,
    finished_at: float,
    *,
    summary: str = "",
    files: list[str] | None = None,
    commit: str | None = None,
    usage: Usage | None = None,
    error: ResultError | None = None,
    push: Push | None = None,
) -> Result:
    """The v1 result; notes are appended to the summary, long parts are cut to fit SQS."""
    if facts.notes:
        summary = "\n\n".join([summary, "Note: " + "; ".join(facts.notes)]).strip()
    summary, files = fit(summary, files or [])
    command = facts.command
    return Result(
        command_id=command.command_id, session_id=command.session_id, status=status,
        summary=summary, files_changed=files, commit=commit,
        preview_path=preview_path(command.session_id),
        timings=Timings(received_at=stamp(facts.received_at), started_at=stamp(facts.started_at),
                        finished_at=stamp(finished_at),
                        duration_ms=max(0, int((finished_at - facts.started_at) * 1000))),
        usage=usage or Usage(), error=error, push=push, environment=facts.environment,
    )
