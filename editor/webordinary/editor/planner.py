"""Pure decisions: what to do with a queue message, how to name commits, where files may go."""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from webordinary.contracts.instruction import customer_words
from webordinary.contracts.messages import Command, Result, ResultError, ResultStatus

ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
UPLOADS_DIR = "public/uploads"
SUMMARY_MAX = 20_000
FILES_MAX = 500
SUBJECT_MAX = 72
PATH_KEYS = ("file_path", "path", "notebook_path")


@dataclass(frozen=True)
class Reject:
    """The message can never be processed: answer `rejected` and delete it."""

    command_id: str
    session_id: str
    reason: str
    message: str


@dataclass(frozen=True)
class Replay:
    """Already answered (a redelivery): send the journaled result again, do not rerun."""

    result: Result


@dataclass(frozen=True)
class Adopt:
    """The command that is running right now came back (visibility lapsed): keep the new handle."""

    command: Command


@dataclass(frozen=True)
class Run:
    command: Command


Plan = Reject | Replay | Adopt | Run


def _field(raw: Any, name: str) -> str | None:
    value = raw.get(name) if isinstance(raw, dict) else None
    return value if isinstance(value, str) and value else None


def _describe(error: ValidationError) -> tuple[str, str]:
    """A reason code and a human sentence naming every problem of the envelope."""
    problems = []
    reason = "invalid_envelope"
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "message"
        problems.append(f"{where}: {item['msg']}")
        if item["loc"] == ("type",) and item["type"] != "missing":
            reason = "unknown_type"
        elif item["loc"] == ("version",) and reason == "invalid_envelope":
            reason = "unsupported_version"
    return reason, "; ".join(problems)


def parse(body: str, message_id: str) -> Command | Reject:
    """Validate a queue body against the v1 envelope; anything else becomes a named Reject."""
    fallback_id = f"sqs-{message_id}"
    try:
        raw = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return Reject(fallback_id, "", "invalid_json", f"the message is not JSON: {exc}")
    command_id = _field(raw, "commandId") or fallback_id
    session_id = _field(raw, "sessionId") or ""
    if not isinstance(raw, dict):
        return Reject(command_id, session_id, "invalid_envelope",
                      "the message must be a JSON object (the v1 command envelope)")
    try:
        return Command.model_validate(raw)
    except ValidationError as exc:
        reason, message = _describe(exc)
        return Reject(command_id, session_id, reason, message)


def plan(
    body: str,
    message_id: str,
    answered: Callable[[str], Result | None],
    running: str | None,
) -> Plan:
    """Decide for one received message, given the journal and the running command's id."""
    parsed = parse(body, message_id)
    if isinstance(parsed, Reject):
        return parsed
    previous = answered(parsed.command_id)
    if previous is not None:
        return Replay(previous)
    if running is not None and parsed.command_id == running:
        return Adopt(parsed)
    return Run(parsed)


def rejection(reject: Reject, environment: str | None) -> Result:
    return Result(
        command_id=reject.command_id,
        session_id=reject.session_id,
        status=ResultStatus.REJECTED,
        summary=f"The command was rejected: {reject.message}",
        error=ResultError(reason=reject.reason, message=reject.message),
        environment=environment,
    )


def subject(instruction: str, fallback: str) -> str:
    """First line of the customer's words, short enough for a commit subject."""
    words = customer_words(instruction)
    first = next((line.strip() for line in words.splitlines() if line.strip()), "")
    first = first or fallback
    return first if len(first) <= SUBJECT_MAX else first[: SUBJECT_MAX - 3].rstrip() + "..."


def commit_message(command: Command, summary: str, *, wip: str | None = None) -> str:
    """`<instruction>` (or `WIP (<why>): <instruction>`), the agent's summary, the command id."""
    head = subject(command.instruction, f"{command.type.value} command")
    if wip is not None:
        head = f"WIP ({wip}): {head}"
    parts = [head]
    if summary.strip():
        parts.append(summary.strip())
    if command.instruction.strip() and command.instruction.strip() != head:
        parts.append(f"Instruction:\n{command.instruction.strip()}")
    parts.append(f"Command-Id: {command.command_id}\nSession-Id: {command.session_id}")
    return "\n\n".join(parts) + "\n"


def should_give_up(receive_count: int, max_attempts: int) -> bool:
    """A transient failure is retried by redelivery until the last allowed attempt."""
    return receive_count >= max_attempts


def upload_path(worktree: Path, filename: str) -> Path:
    """Where an attachment goes: directly under public/uploads/, never anywhere else."""
    name = posixpath.basename(filename.replace("\\", "/")).strip()
    if name in ("", ".", "..") or name.startswith("."):
        raise ValueError(f"unsafe attachment name {filename!r}")
    target = (worktree / UPLOADS_DIR / name).resolve()
    base = (worktree / UPLOADS_DIR).resolve()
    if target.parent != base:
        raise ValueError(f"attachment {filename!r} would leave {UPLOADS_DIR}")
    return target


def confined(worktree: Path, candidate: str) -> bool:
    """True when a tool path stays inside the worktree and outside its .git metadata."""
    root = worktree.resolve()
    path = Path(candidate)
    resolved = (path if path.is_absolute() else root / path).resolve()
    if resolved != root and root not in resolved.parents:
        return False
    relative = resolved.relative_to(root).parts
    return not relative or relative[0] != ".git"


GLOB_CHARS = "*?[{"


def glob_confined(worktree: Path, pattern: str) -> bool:
    """A glob pattern stays inside the worktree: no `..` segment, no `~`, and an absolute
    pattern's fixed prefix (up to the first wildcard) lies inside it."""
    parts = pattern.replace("\\", "/").split("/")
    if ".." in parts or pattern.startswith("~"):
        return False
    fixed: list[str] = []
    for part in parts:
        if any(char in part for char in GLOB_CHARS):
            break
        fixed.append(part)
    prefix = "/".join(fixed)
    if pattern.startswith("/"):
        return confined(worktree, prefix or "/")
    return confined(worktree, prefix or ".")


def tool_path_problem(worktree: Path, tool_input: dict[str, Any],
                      tool: str | None = None) -> str | None:
    """Why a tool call must be refused (a path escaping the worktree), or None.

    Glob's `pattern` is a path too (an absolute one may point anywhere); Grep's is a regex.
    """
    for key in PATH_KEYS:
        value = tool_input.get(key)
        if isinstance(value, str) and value and not confined(worktree, value):
            return f"{key} {value!r} is outside this site's working copy"
    globs = ("pattern", "glob") if tool == "Glob" else ("glob",)
    for key in globs:
        value = tool_input.get(key)
        if isinstance(value, str) and value and not glob_confined(worktree, value):
            return f"{key} {value!r} reaches outside this site's working copy"
    return None


def build_report(output: str, limit: int = 2000) -> str:
    """The useful end of a failed build's output: no colour codes, no stack frames."""
    lines = [ANSI_RE.sub("", line).rstrip() for line in output.splitlines()]
    kept = [line for line in lines if line.strip() and not line.lstrip().startswith("at ")]
    text = "\n".join(kept)
    return text if len(text) <= limit else "..." + text[-limit:]


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/key` -> (bucket, key); anything else is refused."""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[5:].partition("/")
    if not bucket or not key:
        raise ValueError(f"an s3 URI needs a bucket and a key: {uri!r}")
    return bucket, key


def fit(summary: str, files: list[str]) -> tuple[str, list[str]]:
    """Keep a result well under SQS's 256 KiB: long summaries and file lists are cut, saying so."""
    if len(summary) > SUMMARY_MAX:
        summary = summary[:SUMMARY_MAX] + "\n[summary shortened]"
    if len(files) > FILES_MAX:
        files = [*files[:FILES_MAX], f"... and {len(files) - FILES_MAX} more files"]
    return summary, files


def summary_from_commit(message: str) -> str:
    """The agent's summary as `commit_message` recorded it (between subject and trailers)."""
    paragraphs = [p.strip() for p in message.strip().split("\n\n")]
    body = []
    for paragraph in paragraphs[1:]:
        if paragraph.startswith(("Instruction:", "Command-Id:")):
            break
        body.append(paragraph)
    return "\n\n".join(body)
