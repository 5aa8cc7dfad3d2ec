"""One pure function from a received mail to what Hermes does about it.

`decide()` answers Accept (an edit plan), Reply (a polite reason, to a sender that passed
authentication) or Drop (no answer at all: forged, machine-generated or our own mail).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from webordinary.contracts.naming import environment_name
from webordinary.hermes import auth
from webordinary.hermes.auth import Verdicts
from webordinary.hermes.mail import (
    REFERENCES_KEPT,
    MailAttachment,
    MailError,
    ParsedMail,
    clean,
    parse_mail,
)
from webordinary.hermes.quotes import strip_quotes
from webordinary.hermes.routing import Miss, Route, RoutingConfig, known_sender, route
from webordinary.hermes.threads import ThreadKeys, resolve_thread, thread_keys

INSTRUCTION_MAX = 99_000
"""Leaves room in the command (100,000 characters) for the frame around the words."""


class Inbound(BaseModel):
    """A mail as delivered (SES or SMTP): the bytes and what the transport checked."""

    model_config = ConfigDict(frozen=True)

    raw: bytes
    verdicts: Verdicts
    source: Literal["ses", "smtp"]
    delivery_id: str
    """SES message id or the SMTP session's id: the fallback identity of the mail."""
    recipients: list[str] = Field(default_factory=list)
    envelope_from: str = ""
    received_at: datetime | None = None
    header_from: list[str] = Field(default_factory=list)
    """From addresses as the transport read them (SES commonHeaders, the SMTP listener):
    whom to answer when the mail itself cannot be read."""
    subject: str = ""
    header_message_id: str | None = None


class Limits(BaseModel):
    model_config = ConfigDict(frozen=True)

    max_message_bytes: int = 10 * 1024 * 1024
    max_attachments: int = 10
    auth_policy: Literal["strict", "dmarc"] = "strict"
    own_addresses: frozenset[str] = frozenset()
    """Addresses that are Hermes itself: mail from them is never acted on (loops)."""


class ReplyContext(BaseModel):
    """Everything needed to answer the user in their thread, kept by Hermes (not the editor)."""

    model_config = ConfigDict(frozen=True)

    to: str
    subject: str
    message_id: str | None = None
    references: list[str] = Field(default_factory=list)
    thread_index: str | None = None
    project_address: str | None = None


class Reason(StrEnum):
    UNKNOWN_SENDER = "unknown-sender"
    UNKNOWN_PROJECT = "unknown-project"
    NOT_AUTHORIZED = "not-authorized"
    TOO_LARGE = "too-large"
    TOO_MANY_ATTACHMENTS = "too-many-attachments"
    EMPTY_INSTRUCTION = "empty-instruction"
    INSTRUCTION_TOO_LONG = "instruction-too-long"
    UNAVAILABLE = "unavailable"
    MULTIPLE_SENDERS = "multiple-senders"
    UNREADABLE = "unreadable"


RATE_LIMITED_REASONS = frozenset(
    {Reason.UNKNOWN_SENDER, Reason.UNKNOWN_PROJECT, Reason.NOT_AUTHORIZED,
     Reason.MULTIPLE_SENDERS, Reason.UNREADABLE}
)
REPLY_SUBJECT_CHARS = 200


@dataclass(frozen=True)
class EditPlan:
    """What to do for an accepted mail: which environment, which session, which command."""

    route: Route
    environment: str
    thread_id: str
    thread_keys: ThreadKeys
    command_id: str
    instruction: str
    attachments: tuple[MailAttachment, ...]
    reply: ReplyContext
    received_at: datetime | None = None


@dataclass(frozen=True)
class Accept:
    plan: EditPlan


@dataclass(frozen=True)
class Reply:
    reason: Reason
    reply: ReplyContext
    detail: str = ""
    thread_id: str = ""
    environment: str = ""
    """Set when the mail was routed: the reply's ids join that environment's thread registry
    (a user answering "please send an instruction" stays in the session)."""


@dataclass(frozen=True)
class Drop:
    reason: str
    details: dict[str, str] = field(default_factory=dict)


Decision = Accept | Reply | Drop


def command_id_for(mail: ParsedMail, delivery_id: str, scope: str = "") -> str:
    """Deterministic per mail and environment (`scope`), so a mail delivered twice (SES does
    that) is one command, and one tenant's Message-ID can never shadow another tenant's mail."""
    basis = f"mid:{mail.message_id}" if mail.message_id else f"raw:{delivery_id}"
    if scope:
        basis = f"{scope}\x00{basis}"
    return "cmd-" + hashlib.sha256(basis.encode("utf-8")).hexdigest()[:24]


def reply_subject(subject: str) -> str:
    """The user's subject with one 'Re: ' in front (kept as is when it has one): one line,
    no control characters, at most REPLY_SUBJECT_CHARS long."""
    subject = clean(subject, REPLY_SUBJECT_CHARS * 4) or "your edit request"
    if not subject.lower().startswith("re:"):
        subject = f"Re: {subject}"
    if len(subject) > REPLY_SUBJECT_CHARS:
        subject = subject[: REPLY_SUBJECT_CHARS - 3].rstrip() + "..."
    return subject


def reply_context(mail: ParsedMail, project_address: str | None = None,
                  to: str | None = None) -> ReplyContext:
    refs = list(mail.references)
    if mail.message_id and mail.message_id not in refs:
        refs.append(mail.message_id)
    if len(refs) > REFERENCES_KEPT:
        refs = [refs[0], *refs[-(REFERENCES_KEPT - 1):]]
    return ReplyContext(
        to=to or mail.from_address,  # the authenticated address, never a Reply-To redirection
        subject=reply_subject(mail.subject),
        message_id=mail.message_id,
        references=refs,
        thread_index=mail.thread_index,
        project_address=project_address,
    )


def instruction_of(mail: ParsedMail) -> str:
    """The new text of the mail; a new thread with an empty body uses its subject."""
    if mail.instruction is not None:
        return mail.instruction
    text = strip_quotes(mail.text)
    if not text and not mail.in_reply_to and not mail.references:
        subject = mail.subject.strip()
        if subject and not subject.lower().startswith(("re:", "fw:", "fwd:", "aw:")):
            return subject
    return text


def decide(
    inbound: Inbound,
    routing: RoutingConfig,
    limits: Limits,
    known_threads: Mapping[str, str] | None = None,
    mail: ParsedMail | None = None,
) -> Decision:
    """parse -> loop guard -> authentication -> routing -> limits -> plan."""
    if mail is None:
        try:
            mail = parse_mail(inbound.raw)
        except MailError as exc:
            return Drop("unparseable", {"error": str(exc)})
    sender = mail.from_address
    if not sender:
        return Drop("no-sender")
    own = {a.lower() for a in limits.own_addresses}
    if sender in own or (inbound.envelope_from and inbound.envelope_from in own):
        return Drop("own-address")
    if mail.auto_submitted:
        return Drop("auto-submitted", {"why": mail.auto_submitted})
    outcome = auth.check(inbound.verdicts, limits.auth_policy)
    if not outcome.ok:
        return Drop("auth-failed", {"why": outcome.reason})
    if len(mail.from_addresses) > 1:
        # Which of them wrote it? Nobody can tell: refuse, and say so to a sender we know.
        to = known_sender(routing, mail.from_addresses, inbound.envelope_from)
        if to is None:
            return Drop("multiple-senders", {"from": ", ".join(mail.from_addresses[:5])})
        return Reply(Reason.MULTIPLE_SENDERS, reply_context(mail, to=to),
                     str(len(mail.from_addresses)))

    recipients = inbound.recipients or [*mail.to, *mail.cc]
    found = route(routing, sender, recipients)
    keys = thread_keys(mail, fallback=inbound.delivery_id)
    if isinstance(found, Miss):
        thread = resolve_thread(keys, known_threads)
        reason = {
            Miss.UNKNOWN_SENDER: Reason.UNKNOWN_SENDER,
            Miss.UNKNOWN_PROJECT: Reason.UNKNOWN_PROJECT,
            Miss.NOT_AUTHORIZED: Reason.NOT_AUTHORIZED,
        }[found]
        return Reply(reason, reply_context(mail), thread_id=thread)
    environment = environment_name(found.client_id, found.project_id, found.user_id)
    thread = resolve_thread(keys, known_threads, scope=environment)
    context = reply_context(mail, found.address)
    if mail.headers_only or (inbound.raw and len(inbound.raw) > limits.max_message_bytes):
        return Reply(Reason.TOO_LARGE, context, f"{len(inbound.raw)} bytes", thread, environment)
    if len(mail.attachments) > limits.max_attachments:
        return Reply(Reason.TOO_MANY_ATTACHMENTS, context, str(len(mail.attachments)), thread,
                     environment)
    instruction = instruction_of(mail)
    if not instruction:
        return Reply(Reason.EMPTY_INSTRUCTION, context, thread_id=thread, environment=environment)
    if len(instruction) > INSTRUCTION_MAX:
        return Reply(Reason.INSTRUCTION_TOO_LONG, context, str(len(instruction)), thread,
                     environment)
    return Accept(
        EditPlan(
            route=found,
            environment=environment,
            thread_id=thread,
            thread_keys=keys,
            command_id=command_id_for(mail, inbound.delivery_id, environment),
            instruction=instruction,
            attachments=tuple(mail.attachments),
            reply=context,
            received_at=inbound.received_at,
        )
    )
