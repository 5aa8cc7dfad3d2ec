"""Queue messages (v1): the command Hermes sends, the result the editor answers with.

Delivery is at least once; every consumer is idempotent on `commandId`.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field

from webordinary.contracts.base import WireModel
from webordinary.contracts.naming import THREAD_ID_RE

COMMAND_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"


class CommandType(StrEnum):
    EDIT = "edit"
    BUILD = "build"
    COMMIT = "commit"
    PUSH = "push"


class ResultStatus(StrEnum):
    COMPLETED = "completed"
    INTERRUPTED = "interrupted"
    FAILED = "failed"
    REJECTED = "rejected"
    # The edit is done and committed, but the session branch in the customer's repository
    # changed in a way it cannot be combined with: the work is on `push.branch` instead.
    CONFLICT = "conflict"


class PushState(StrEnum):
    PUSHED = "pushed"
    CONFLICT = "conflict"
    FAILED = "failed"
    DISABLED = "disabled"


class Attachment(WireModel):
    """A file from the email (e.g. an image) for the site; inline base64 or an S3 URI."""

    filename: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,254}$")]
    content_type: str = "application/octet-stream"
    content_base64: str | None = None
    s3_uri: str | None = None
    size: Annotated[int, Field(ge=0)] = 0


class CommandContext(WireModel):
    branch: Annotated[str, Field(min_length=1, max_length=255)]
    files: list[str] = Field(default_factory=list)


class Command(WireModel):
    """v1 envelope on an environment's input queue."""

    version: Literal["v1"] = "v1"
    session_id: Annotated[str, Field(pattern=THREAD_ID_RE.pattern, max_length=40)]
    command_id: Annotated[str, Field(pattern=COMMAND_ID_PATTERN)]
    type: CommandType
    instruction: Annotated[str, Field(max_length=100_000)] = ""
    context: CommandContext
    attachments: list[Attachment] = Field(default_factory=list, max_length=20)
    created_at: datetime | None = None


class Timings(WireModel):
    received_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_ms: Annotated[int, Field(ge=0)] | None = None


class Usage(WireModel):
    input_tokens: Annotated[int, Field(ge=0)] = 0
    output_tokens: Annotated[int, Field(ge=0)] = 0
    cost_usd: float | None = None


class Push(WireModel):
    """What became of the session branch in the customer's repository after the command."""

    state: PushState
    branch: str | None = None  # the remote branch that holds the work (a side branch on conflict)
    integrated: Literal["rebase", "merge"] | None = None  # how the remote's new commits came in
    attempts: Annotated[int, Field(ge=0)] = 0
    error: str | None = None


class ResultError(WireModel):
    reason: str
    message: str


class Result(WireModel):
    """v1 envelope on an environment's output queue (or synthesized by Hermes from the DLQ)."""

    version: Literal["v1"] = "v1"
    command_id: str
    session_id: str
    status: ResultStatus
    summary: str = ""
    files_changed: list[str] = Field(default_factory=list)
    commit: str | None = None
    preview_path: str | None = None
    timings: Timings = Field(default_factory=Timings)
    usage: Usage = Field(default_factory=Usage)
    error: ResultError | None = None
    push: Push | None = None
    environment: str | None = None
