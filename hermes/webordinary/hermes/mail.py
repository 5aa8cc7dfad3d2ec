"""Raw RFC 5322 mail to the fields Hermes decides on (pure: bytes in, model out).

The stdlib's compat32 parser builds the MIME tree (policy.default re-parses structured headers
on every access and is ~5x slower); headers Hermes reads are decoded explicitly (RFC 2047
encoded words, RFC 2231 parameters), bodies by their charset and transfer encoding.
"""

from __future__ import annotations

import email
import re
import unicodedata
from datetime import datetime
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime

from pydantic import BaseModel, ConfigDict, Field

from webordinary.hermes.htmltext import html_to_text

_MSGID = re.compile(r"<([^<>\s]+)>")
_FILENAME_BAD = re.compile(r"[^A-Za-z0-9._ -]+")
# Parts that travel with mail but are never content for a website.
_NOT_CONTENT_TYPES = frozenset(
    {
        "application/pkcs7-signature", "application/x-pkcs7-signature", "application/pgp-signature",
        "application/ms-tnef", "text/vcard", "text/x-vcard", "text/calendar",
    }
)


class MailError(ValueError):
    """The bytes are not a mail we can read at all."""


class MailAttachment(BaseModel):
    """A file carried by the mail (decoded bytes), with a filename safe for the site."""

    model_config = ConfigDict(frozen=True)

    filename: str
    content_type: str
    data: bytes
    inline: bool = False

    @property
    def size(self) -> int:
        return len(self.data)


class ParsedMail(BaseModel):
    """What Hermes needs from one mail; every header decoded, every body in Unicode."""

    model_config = ConfigDict(frozen=True)

    message_id: str | None = None
    in_reply_to: list[str] = Field(default_factory=list)
    references: list[str] = Field(default_factory=list)
    thread_index: str | None = None
    subject: str = ""
    from_address: str = ""
    from_name: str = ""
    reply_to: str | None = None
    to: list[str] = Field(default_factory=list)
    cc: list[str] = Field(default_factory=list)
    date: datetime | None = None
    auto_submitted: str | None = None
    """Why this mail was machine-generated (auto-reply, bounce, list), or None for a person."""
    text: str = ""
    """The best body as text: text/plain when present, else the HTML converted to text."""
    html: str | None = None
    attachments: list[MailAttachment] = Field(default_factory=list)
    size: int = 0


def msg_ids(value: str | None) -> list[str]:
    """Message-IDs in a header value, without angle brackets, in order, no repeats."""
    if not value:
        return []
    found = _MSGID.findall(value) or [token.strip("<>") for token in value.split() if token]
    seen: dict[str, None] = {}
    for item in found:
        seen.setdefault(item, None)
    return list(seen)


def decode_words(value: str) -> str:
    """A header value with RFC 2047 encoded words decoded and folding removed."""
    value = " ".join(value.split())
    if "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(value)))
    except (LookupError, UnicodeError, ValueError, email.errors.HeaderParseError):
        return value


def _header(msg: Message, name: str) -> str | None:
    value = msg.get(name)
    if value is None:
        return None
    return decode_words(str(value)).strip()


def _addresses(msg: Message, name: str) -> list[tuple[str, str]]:
    """(decoded display name, lower-cased address) pairs of an address header."""
    values = [str(v) for v in msg.get_all(name, failobj=[])]
    pairs = getaddresses(values)
    return [(decode_words(n).strip(), a.strip().lower()) for n, a in pairs if "@" in a]


def _decode_text(part: Message) -> str:
    """A text part's content as str, whatever its charset or transfer encoding."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "us-ascii"
    for candidate in (charset, "utf-8", "cp1252"):
        try:
            return payload.decode(candidate)
        except (LookupError, ValueError):  # unknown/garbled charset names raise ValueError too
            continue
    return payload.decode("latin-1")


def safe_filename(name: str | None, index: int, content_type: str) -> str:
    """ASCII filename matching the Command attachment pattern, keeping the extension."""
    ext = {"image/png": ".png", "image/jpeg": ".jpg", "image/gif": ".gif", "image/webp": ".webp",
           "image/svg+xml": ".svg", "application/pdf": ".pdf"}.get(content_type, ".bin")
    ascii_name = ""
    if name:
        ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
        ascii_name = _FILENAME_BAD.sub("-", ascii_name.replace("/", "-").replace("\\", "-"))
        ascii_name = ascii_name.lstrip("._ -")[:200].strip()
    if not ascii_name or not ascii_name[0].isalnum():
        return f"attachment-{index}{ext}"
    if "." not in ascii_name:
        ascii_name += ext
    return ascii_name


def _is_auto(msg: Message, from_address: str) -> str | None:
    """Reason this mail came from a machine (never answer those: mail loops)."""
    auto = (_header(msg, "Auto-Submitted") or "no").lower()
    if auto != "no":
        return f"auto-submitted:{auto.split(';')[0]}"
    precedence = (_header(msg, "Precedence") or "").lower()
    if precedence in ("bulk", "junk", "list", "auto_reply"):
        return f"precedence:{precedence}"
    if _header(msg, "X-Autoreply") or _header(msg, "X-Autorespond"):
        return "autoreply-header"
    if _header(msg, "List-Id") or _header(msg, "List-Unsubscribe"):
        return "mailing-list"
    return_path = _header(msg, "Return-Path")
    if return_path is not None and return_path.strip() in ("<>", ""):
        return "bounce"
    local = from_address.split("@", 1)[0]
    if local in ("mailer-daemon", "postmaster") or local.startswith(("noreply", "no-reply")):
        return "bounce"
    if msg.get_content_type() == "multipart/report":
        return "bounce"
    return None


def _leaves(msg: Message) -> list[Message]:
    """Leaf parts in document order, not descending into attached mails (message/rfc822)."""
    found: list[Message] = []
    stack: list[Message] = [msg]
    while stack:
        part = stack.pop()
        if part.is_multipart() and part.get_content_type() != "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list):
                stack.extend(reversed([p for p in payload if isinstance(p, Message)]))
            continue
        found.append(part)
    return found


def parse_mail(raw: bytes) -> ParsedMail:
    """Parse raw mail bytes; raises MailError only when there is no mail to speak of."""
    if not raw or not raw.strip():
        raise MailError("empty message")
    try:
        msg = email.message_from_bytes(raw)
    except Exception as exc:  # the stdlib parser is lenient; anything escaping is fatal
        raise MailError(f"unreadable message: {exc}") from exc
    if not msg.keys():
        raise MailError("no headers")
    senders = _addresses(msg, "From")
    from_name, from_address = senders[0] if senders else ("", "")
    reply_to = _addresses(msg, "Reply-To")
    date: datetime | None
    try:
        date_value = _header(msg, "Date")
        date = parsedate_to_datetime(date_value) if date_value else None
    except (TypeError, ValueError, IndexError):
        date = None

    leaves = _leaves(msg)
    text, html, body_parts = _bodies(leaves)
    attachments = _attachments(leaves, body_parts)
    return ParsedMail(
        message_id=next(iter(msg_ids(_header(msg, "Message-ID"))), None),
        in_reply_to=msg_ids(_header(msg, "In-Reply-To")),
        references=msg_ids(_header(msg, "References")),
        thread_index=_header(msg, "Thread-Index"),
        subject=_header(msg, "Subject") or "",
        from_address=from_address,
        from_name=from_name,
        reply_to=reply_to[0][1] if reply_to else None,
        to=[a for _, a in _addresses(msg, "To")],
        cc=[a for _, a in _addresses(msg, "Cc")],
        date=date,
        auto_submitted=_is_auto(msg, from_address),
        text=text,
        html=html,
        attachments=attachments,
        size=len(raw),
    )


def _is_attachment(part: Message) -> bool:
    return part.get_content_disposition() == "attachment" or (
        part.get_filename() is not None and part.get_content_disposition() != "inline"
    )


def _bodies(leaves: list[Message]) -> tuple[str, str | None, set[int]]:
    """(text, html, ids of the parts used as body): the first text/plain and text/html that
    are not attachments; the text is the plain part, else the HTML converted to text."""
    plain_part = html_part = None
    for part in leaves:
        ctype = part.get_content_type()
        if ctype not in ("text/plain", "text/html") or _is_attachment(part):
            continue
        if ctype == "text/plain" and plain_part is None:
            plain_part = part
        elif ctype == "text/html" and html_part is None:
            html_part = part
    used: set[int] = set()
    html = None
    if html_part is not None:
        html = _decode_text(html_part)
        used.add(id(html_part))
    if plain_part is not None:
        used.add(id(plain_part))
        text = _decode_text(plain_part)
    elif html is not None:
        text = html_to_text(html)
    else:
        text = ""
    return text.replace("\r\n", "\n").replace("\r", "\n"), html, used


def _attachments(leaves: list[Message], body_parts: set[int]) -> list[MailAttachment]:
    """Files carried by the mail: every leaf that is not a body, a signature or a mail."""
    found: list[MailAttachment] = []
    names: set[str] = set()
    for part in leaves:
        ctype = part.get_content_type()
        if ctype == "message/rfc822" or id(part) in body_parts or ctype in _NOT_CONTENT_TYPES:
            continue  # a forwarded mail is context, not a file for the site
        disposition = part.get_content_disposition()
        filename = part.get_filename()
        if filename is not None:
            filename = decode_words(filename)
        if ctype.startswith("text/") and not filename and disposition != "attachment":
            continue  # an alternative body we did not pick
        data = part.get_payload(decode=True)
        if not isinstance(data, bytes) or not data:
            continue
        name = safe_filename(filename, len(found) + 1, ctype)
        stem, dot, ext = name.rpartition(".")
        counter = 2
        while name in names:
            name = f"{stem}-{counter}{dot}{ext}" if dot else f"{name}-{counter}"
            counter += 1
        names.add(name)
        found.append(
            MailAttachment(
                filename=name, content_type=ctype, data=data, inline=disposition == "inline"
            )
        )
    return found
