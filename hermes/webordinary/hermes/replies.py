"""Reply mails: what to tell the user, in their thread, as text and HTML (pure)."""

from __future__ import annotations

import html
import re
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr

from pydantic import BaseModel, ConfigDict, Field

from webordinary.contracts.messages import Result, ResultStatus
from webordinary.contracts.naming import preview_path
from webordinary.hermes.decisions import Reason, ReplyContext, reply_subject
from webordinary.hermes.mail import REFERENCES_KEPT, clean, valid_id

FILES_SHOWN = 20


class OutgoingMail(BaseModel):
    """One reply, ready to render; threading headers point at the user's message."""

    model_config = ConfigDict(frozen=True)

    sender: str
    sender_name: str = ""
    to: str
    subject: str
    message_id: str
    in_reply_to: str | None = None
    references: list[str] = Field(default_factory=list)
    thread_index: str | None = None
    text: str
    html: str
    kind: str


def preview_url(base_url: str, thread_id: str) -> str:
    """`{previewBaseUrl}/session/{threadId}/`."""
    return base_url.rstrip("/") + preview_path(thread_id)


def reply_message_id(kind: str, key: str, sender: str) -> str:
    """Deterministic Message-ID of a reply (without brackets), so retries are recognisable."""
    return f"{kind}.{key}@{sender.rpartition('@')[2] or 'webordinary.dev'}"


def _html_paragraph(text: str) -> str:
    return f"<p>{html.escape(text).replace(chr(10), '<br>')}</p>"


def _compose(
    ctx: ReplyContext, sender: str, sender_name: str, kind: str, key: str,
    paragraphs: list[str], items: list[str] | None = None, link: str | None = None,
    after: list[str] | None = None,
) -> OutgoingMail:
    """Paragraphs, then the list of items (right under its heading), then `after`, the link."""
    text_parts = list(paragraphs)
    html_parts = [_html_paragraph(p) for p in paragraphs]
    if items:
        text_parts.append("\n".join(f"  - {item}" for item in items))
        html_parts.append(
            "<ul>" + "".join(f"<li><code>{html.escape(i)}</code></li>" for i in items) + "</ul>"
        )
    text_parts.extend(after or [])
    html_parts.extend(_html_paragraph(p) for p in after or [])
    if link:
        text_parts.append(f"Preview: {link}")
        safe = html.escape(link, quote=True)
        html_parts.append(f'<p>Preview: <a href="{safe}">{safe}</a></p>')
    text_parts.append("-- \nWebordinary (reply to this mail to continue editing)")
    html_parts.append(
        '<p style="color:#666">Webordinary &middot; reply to this mail to continue editing</p>'
    )
    return OutgoingMail(
        sender=sender,
        sender_name=sender_name,
        to=ctx.to,
        subject=ctx.subject,
        message_id=reply_message_id(kind, key, sender),
        in_reply_to=ctx.message_id,
        references=list(ctx.references),
        thread_index=ctx.thread_index,
        text="\n\n".join(text_parts) + "\n",
        html="<html><body>" + "".join(html_parts) + "</body></html>",
        kind=kind,
    )


def ack_mail(
    ctx: ReplyContext, command_id: str, thread_id: str, base_url: str, sender: str,
    sender_name: str = "", *, link: str | None = None,
) -> OutgoingMail:
    return _compose(
        ctx, sender, sender_name, "ack", command_id,
        ["Got it - we are working on your request. We will write again when it is done.",
         "You can watch the preview while we work:"],
        link=link or preview_url(base_url, thread_id),
    )


def result_mail(
    ctx: ReplyContext, result: Result, thread_id: str, base_url: str, sender: str,
    sender_name: str = "", *, link: str | None = None,
) -> OutgoingMail:
    """The answer to a command: what changed and the preview, or what went wrong and what to do."""
    link = link or preview_url(base_url, thread_id)
    files = result.files_changed[:FILES_SHOWN]
    more = len(result.files_changed) - len(files)
    items = files + ([f"... and {more} more"] if more > 0 else [])
    summary = result.summary.strip()
    after: list[str] = []
    if result.status == ResultStatus.COMPLETED:
        paragraphs = ["Done! " + (summary or "Your change is ready.")]
        if items:
            paragraphs.append("Files changed:")
        if result.commit:
            after.append(f"Saved as commit {result.commit[:12]}.")
        after.append("Reply to this mail if you want anything else changed.")
    elif result.status == ResultStatus.INTERRUPTED:
        paragraphs = [
            ("Your request was interrupted before it finished. " + summary).strip(),
            "Reply to this mail to continue where we stopped, or send your request again.",
        ]
    elif result.status == ResultStatus.CONFLICT:
        branch = result.push.branch if result.push and result.push.branch else None
        where = f"on a branch of its own, {branch}" if branch else "on a branch of its own"
        paragraphs = [
            "Your change is made" + (f": {summary}" if summary else "."),
            "While we worked, someone else changed the same part of your site in your "
            "repository, so the two versions could not be combined automatically. Nothing is "
            f"lost: your change is saved in your repository {where}, next to theirs.",
            "What to do: ask whoever looks after your site's code to combine the two, or reply "
            "to this mail to tell us which version to keep. The preview shows your change.",
        ]
        if items:
            paragraphs.append("Files changed:")
        if result.commit:
            after.append(f"Saved as commit {result.commit[:12]}.")
    else:
        why = result.error.message if result.error else summary or "an unknown error"
        verb = "could not be carried out" if result.status == ResultStatus.REJECTED else "failed"
        advice = (
            "What to try: reply with a shorter, more specific request (one change per mail "
            "works best), e.g. 'Change the phone number on the contact page to 555-0100'. "
            "Your site is unchanged unless the files below are listed.")
        if result.error and result.error.reason in ("budget_exceeded", "disk_full"):
            advice = "Your site is unchanged unless the files below are listed."
        paragraphs = [f"Sorry - your request {verb}: {why}", advice]
        if items:
            paragraphs.append("Files touched before it stopped:")
    return _compose(
        ctx, sender, sender_name, f"result-{result.status.value}", result.command_id,
        paragraphs, items or None, link, after,
    )


def dlq_mail(
    ctx: ReplyContext, command_id: str, thread_id: str, base_url: str, sender: str,
    sender_name: str = "", cause: str = "", *, link: str | None = None,
) -> OutgoingMail:
    """A command that ended in the dead-letter queue: it was tried several times and failed."""
    detail = f" ({cause})" if cause else ""
    return _compose(
        ctx, sender, sender_name, "result-failed", command_id,
        [f"Sorry - we could not process your request after several attempts{detail}.",
         "What to try: reply to this mail to send it again in a few minutes. If it keeps "
         "failing, split it into smaller changes, or contact support and mention the "
         f"reference {command_id}."],
        link=link or preview_url(base_url, thread_id),
    )


_REJECT_TEXT: dict[Reason, list[str]] = {
    Reason.UNKNOWN_SENDER: [
        "Thanks for your mail. This address edits websites for registered Webordinary users "
        "only, and we do not recognise your address.",
        "If you should have access, ask your site's administrator to add your address.",
    ],
    Reason.UNKNOWN_PROJECT: [
        "Thanks for your mail. We could not find a website project for the address you wrote "
        "to.",
        "Please check the address (it is listed in your welcome mail) and send your request "
        "again.",
    ],
    Reason.NOT_AUTHORIZED: [
        "Thanks for your mail. Your address is not allowed to edit the project you wrote to.",
        "If you should have access, ask your site's administrator to add you to this project.",
    ],
    Reason.TOO_LARGE: [
        "Your mail is too large for us to process.",
        "Please send smaller images (or fewer at a time) and try again.",
    ],
    Reason.TOO_MANY_ATTACHMENTS: [
        "Your mail has more attachments than we can handle at once.",
        "Please split them over several mails, each with its own instruction.",
    ],
    Reason.EMPTY_INSTRUCTION: [
        "We received your mail but could not find an instruction in it.",
        "Please reply with what you would like to change, e.g. 'Add the attached photo to the "
        "About page'.",
    ],
    Reason.UNAVAILABLE: [
        "Sorry - we could not start your editing environment, so your request was not "
        "carried out.",
        "What to try: send your request again in a few minutes. If this keeps happening, "
        "please contact support.",
    ],
    Reason.MULTIPLE_SENDERS: [
        "Your mail names more than one sender in its From line, so we cannot tell who is "
        "asking for the change, and nothing was changed.",
        "Please send your request again from your own address only.",
    ],
    Reason.UNREADABLE: [
        "Sorry - we could not read your mail (it is too complex or malformed for us to "
        "process safely), so nothing was changed.",
        "Please send your request again as a plain, simple mail, with images attached "
        "rather than embedded.",
    ],
    Reason.INSTRUCTION_TOO_LONG: [
        "Your instruction is longer than we can take in one go.",
        "Please split it into several smaller requests.",
    ],
}


def rejection_mail(
    ctx: ReplyContext, reason: Reason, key: str, sender: str, sender_name: str = "",
    detail: str = "",
) -> OutgoingMail:
    paragraphs = list(_REJECT_TEXT[reason])
    if reason == Reason.TOO_MANY_ATTACHMENTS and detail:
        paragraphs[0] += f" (it has {detail})"
    return _compose(ctx, sender, sender_name, f"reject-{reason.value}", key, paragraphs)


_THREAD_INDEX = re.compile(r"^[A-Za-z0-9+/=]{1,1024}$")


def _ids(values: list[str]) -> list[str]:
    """Only ids that can stand in a header, root and the last few (a reply stays small)."""
    ids = [v for v in values if valid_id(v)]
    return ids if len(ids) <= REFERENCES_KEPT else [ids[0], *ids[-(REFERENCES_KEPT - 1):]]


def render(mail: OutgoingMail, now: datetime | None = None) -> bytes:
    """RFC 5322 bytes (multipart/alternative text + HTML, CRLF) with the threading headers.

    Every header value is made safe here, whatever the caller passed: one line, no control
    characters, bounded length (a CR/LF from a decoded Subject must never cost the reply).
    """
    msg = EmailMessage()
    name = clean(mail.sender_name, 100)
    msg["From"] = formataddr((name, mail.sender)) if name else mail.sender
    msg["To"] = clean(mail.to, 320).replace(" ", "")
    msg["Subject"] = reply_subject(mail.subject) if mail.subject else "Webordinary"
    msg["Message-ID"] = f"<{clean(mail.message_id, 250).replace(' ', '')}>"
    if now is not None:
        msg["Date"] = format_datetime(now)
    if mail.in_reply_to and valid_id(mail.in_reply_to):
        msg["In-Reply-To"] = f"<{mail.in_reply_to}>"
    references = _ids(list(mail.references))
    if references:
        msg["References"] = " ".join(f"<{r}>" for r in references)
    if mail.thread_index and _THREAD_INDEX.match(mail.thread_index):
        msg["Thread-Index"] = mail.thread_index
    msg["Auto-Submitted"] = "auto-replied"
    msg["X-Webordinary-Kind"] = mail.kind
    msg.set_content(mail.text)
    msg.add_alternative(mail.html, subtype="html")
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))  # RFC 5322 line ends
