"""Building the v1 Command for an accepted mail (pure)."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from datetime import datetime

from webordinary.contracts.instruction import frame
from webordinary.contracts.messages import Attachment, Command, CommandContext, CommandType
from webordinary.contracts.naming import branch_name
from webordinary.hermes.decisions import EditPlan
from webordinary.hermes.mail import MailAttachment


def split_attachments(
    attachments: Iterable[MailAttachment], inline_max_bytes: int
) -> tuple[list[MailAttachment], list[MailAttachment]]:
    """(inline, to S3): smallest first inline while their total stays within the budget.

    The budget keeps the command well under SQS's 256 KiB message limit.
    """
    inline: list[MailAttachment] = []
    stored: list[MailAttachment] = []
    total = 0
    for item in sorted(attachments, key=lambda a: a.size):
        encoded = (item.size + 2) // 3 * 4
        if total + encoded <= inline_max_bytes:
            inline.append(item)
            total += encoded
        else:
            stored.append(item)
    return inline, stored


def attachment_key(prefix: str, plan: EditPlan, item: MailAttachment) -> str:
    """S3 key of a stored attachment: per environment, session and command."""
    return f"{prefix}{plan.environment}/{plan.thread_id}/{plan.command_id}/{item.filename}"


def build_command(
    plan: EditPlan,
    inline: Sequence[MailAttachment],
    stored: Sequence[tuple[MailAttachment, str]],
    now: datetime,
) -> Command:
    """The edit command: instruction, session branch, attachments (inline base64 or S3 URI)."""
    files = [
        Attachment(
            filename=a.filename, content_type=a.content_type, size=a.size,
            content_base64=base64.b64encode(a.data).decode("ascii"),
        )
        for a in inline
    ] + [
        Attachment(filename=a.filename, content_type=a.content_type, size=a.size, s3_uri=uri)
        for a, uri in stored
    ]
    order = {a.filename: i for i, a in enumerate(plan.attachments)}
    files.sort(key=lambda f: order.get(f.filename, len(order)))
    return Command(
        session_id=plan.thread_id,
        command_id=plan.command_id,
        type=CommandType.EDIT,
        instruction=frame(plan.instruction, plan.reply.to, plan.reply.subject),
        context=CommandContext(branch=branch_name(plan.thread_id)),
        attachments=files,
        created_at=now,
    )
