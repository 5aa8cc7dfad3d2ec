"""Raw RFC 5322 mail to the fields Hermes decides on (pure: bytes in, model out).

The stdlib's compat32 parser builds the MIME tree (policy.default re-parses structured headers
on every access and is ~5x slower); headers Hermes reads are decoded explicitly (raw UTF-8 as
RFC 6532 allows, RFC 2047 encoded words, RFC 2231 parameters), bodies by their charset and
transfer encoding. Every header value is cut to a bounded size before any work on it, control
characters never survive, and References keep only the root and the last few ids, so the
cost of a mail is bounded by its size, not by what an attacker packs into a header.
"""

from __future__ import annotations

import email
import email.parser
import re
import unicodedata
from datetime import datetime
from email.feedparser import BytesFeedParser
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime

from pydantic import BaseModel, ConfigDict, Field

from webordinary.hermes.htmltext import html_to_text

_MSGID = re.compile(r"<([^<>\s]{1,250})>")
_MSGID_OK = re.compile(r"^[^<>\s\x00-\x1f\x7f]{1,250}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_ATOM = r"[^\s@<>()\[\],;:\\\"\x00-\x1f\x7f]"
_ADDRESS_OK = re.compile(rf"^{_ATOM}{{1,64}}@{_ATOM}{{1,255}}$")
_SIMPLE_ADDRESS = re.compile(
    r'^\s*(?:"([^"\\]{0,200})"\s*|([^"<>,;:@()\\\[\]]{0,200}?)\s*)?<([^<>@\s,;:"()]+@[^<>@\s,;:"()]+)>\s*$'
    r'|^\s*([^<>@\s,;:"()]+@[^<>@\s,;:"()]+)\s*$'
)
HEADER_CHARS = 16_384
"""A header value Hermes reads is cut at this many characters (a Subject is < 1000)."""
REFERENCES_HEAD = 4_096
REFERENCES_TAIL = 16_384
REFERENCES_KEPT = 10
"""References: the conversation's root and the last few parents are all threading needs."""
SUBJECT_CHARS = 998
STORED_CHARS = 131_072
TEXT_CHARS = 1_000_000
"""Longer text bodies are cut: the new words are at the top, the rest is history."""
FEED_CHUNK = 65_536
MAX_PARTS = 500
"""MIME parts looked at; a mail with more is read up to here."""
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
    """The conversation's root first, then at most the last few parents."""
    thread_index: str | None = None
    subject: str = ""
    from_address: str = ""
    from_name: str = ""
    from_addresses: list[str] = Field(default_factory=list)
    """Every address in From (and in a repeated From header): more than one is refused."""
    reply_to: str | None = None
    to: list[str] = Field(default_factory=list)
    cc: list[str] = Field(default_factory=list)
    date: datetime | None = None
    auto_submitted: str | None = None
    """Why this mail was machine-generated (auto-reply, bounce, list), or None for a person."""
    text: str = ""
    """The best body as text: text/plain when present, else the visible HTML text."""
    html: str | None = None
    attachments: list[MailAttachment] = Field(default_factory=list)
    size: int = 0
    headers_only: bool = False
    """Only the header block was read (a mail too large to take in)."""
    instruction: str | None = None
    """The new words of the mail, when the parse worker already worked them out."""


def clean(value: str, limit: int = HEADER_CHARS) -> str:
    """One line of text: control characters (CR, LF, NUL, ...) become spaces, runs collapse."""
    value = _CONTROL.sub(" ", value[:limit])
    return " ".join(value.split())


def valid_id(value: str) -> bool:
    """Whether a Message-ID (without brackets) can go back into a header as it is."""
    return bool(_MSGID_OK.match(value))


def msg_ids(value: str | None) -> list[str]:
    """Message-IDs in a header value, without angle brackets, in order, no repeats.

    Ids with spaces or control characters are dropped (they could not go back into a header).
    """
    if not value:
        return []
    found = _MSGID.findall(value) or [token.strip("<>") for token in value.split() if token]
    seen: dict[str, None] = {}
    for item in found:
        if valid_id(item):
            seen.setdefault(item, None)
    return list(seen)


def references_of(value: str | None) -> list[str]:
    """References, bounded: the first id (the root) and the last REFERENCES_KEPT - 1."""
    if not value:
        return []
    if len(value) > REFERENCES_HEAD + REFERENCES_TAIL:
        value = value[:REFERENCES_HEAD] + " " + value[-REFERENCES_TAIL:]
    ids = msg_ids(value)
    if len(ids) <= REFERENCES_KEPT:
        return ids
    return [ids[0], *ids[-(REFERENCES_KEPT - 1):]]


def _unraw(value: str) -> str:
    """A header value as the parser stored it, with raw 8-bit bytes (surrogate escapes)
    decoded: UTF-8 (RFC 6532), else Windows-1252 (what legacy clients send)."""
    try:
        value.encode("ascii")
        return value
    except UnicodeEncodeError:
        pass
    try:
        data = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return value
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


def decode_words(value: str) -> str:
    """A header value with RFC 2047 encoded words decoded and folding removed."""
    value = " ".join(value.split())
    if "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(value)))
    except (LookupError, UnicodeError, ValueError, AssertionError,
            email.errors.HeaderParseError):
        return value


class _Headers:
    """The headers of one part: raw values by lower-case name (bounded), decoded on read."""

    def __init__(self, msg: Message) -> None:
        self.values: dict[str, list[str]] = {}
        for name, value in msg.raw_items():
            if not isinstance(value, str):
                value = str(value)
            if len(value) > STORED_CHARS:  # keep both ends (References: root ... last ids)
                half = STORED_CHARS // 2
                value = value[:half] + " " + value[-half:]
            self.values.setdefault(name.lower(), []).append(value)

    def raw(self, name: str, limit: int = HEADER_CHARS) -> str | None:
        found = self.values.get(name.lower())
        if not found:
            return None
        return _unraw(found[0][:limit])

    def get(self, name: str, limit: int = HEADER_CHARS) -> str | None:
        value = self.raw(name, limit)
        if value is None:
            return None
        return clean(decode_words(value), limit)

    def all(self, name: str) -> list[str]:
        return [_unraw(v[:HEADER_CHARS]) for v in self.values.get(name.lower(), [])[:20]]

    def has(self, name: str) -> bool:
        return name.lower() in self.values

    def addresses(self, name: str) -> list[tuple[str, str]]:
        """(decoded display name, lower-cased address) pairs; malformed addresses dropped."""
        values = self.all(name)
        if len(values) == 1:  # the common shapes without the full RFC 5322 parser
            simple = _SIMPLE_ADDRESS.match(values[0])
            if simple:
                display = simple.group(1) or simple.group(2) or ""
                address = (simple.group(3) or simple.group(4)).lower()
                if _ADDRESS_OK.match(address):
                    return [(clean(decode_words(display.strip()), 200), address)]
        pairs = getaddresses(values)
        found: list[tuple[str, str]] = []
        for display, address in pairs[:100]:
            address = address.strip().lower()
            if _ADDRESS_OK.match(address):
                found.append((clean(decode_words(display), 200), address))
        return found


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
        name = name[:1000]
        ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
        ascii_name = _FILENAME_BAD.sub("-", ascii_name.replace("/", "-").replace("\\", "-"))
        ascii_name = ascii_name.lstrip("._ -")[:200].strip()
    if not ascii_name or not ascii_name[0].isalnum():
        return f"attachment-{index}{ext}"
    if "." not in ascii_name:
        ascii_name += ext
    return ascii_name


_AUTO_SUBJECT = re.compile(
    r"^\s*+(?:automatic reply|auto(?:matic)?[- ]?(?:reply|response|antwort)|auto:"
    r"|out of (?:the )?office|ooo\b|abwesenheitsnotiz|abwesend\b|r[ée]ponse automatique"
    r"|absence du bureau|respuesta autom[aá]tica|risposta automatica|automatisch antwoord"
    r"|afwezig|autosvar|automaattinen vastaus|resposta autom[aá]tica|delivery status notification"
    r"|undeliverable:|undelivered mail|mail delivery (?:failed|subsystem)|returned mail:"
    r"|vacation reply|i am (?:currently )?out of)",
    re.IGNORECASE,
)
_SUPPRESS_AUTO = re.compile(r"\b(?:all|oof|autoreply)\b", re.IGNORECASE)


def _is_auto(headers: _Headers, from_address: str, content_type: str) -> str | None:
    """Reason this mail came from a machine (never answer those: mail loops)."""
    auto = (headers.get("Auto-Submitted", 200) or "no").lower()
    if auto != "no":
        return f"auto-submitted:{auto.split(';')[0]}"
    precedence = (headers.get("Precedence", 200) or headers.get("X-Precedence", 200) or "").lower()
    if precedence in ("bulk", "junk", "list", "auto_reply", "auto-reply"):
        return f"precedence:{precedence}"
    for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-AutoReply-From",
                 "X-Mail-Autoreply", "X-Autogenerated", "X-FC-MachineGenerated",
                 "X-MS-Exchange-Generated-Message-Source", "X-MS-Exchange-Inbox-Rules-Loop",
                 "X-Cron-Env", "X-Loop"):
        if headers.has(name) and headers.get(name, 200):
            return f"header:{name.lower()}"
    suppress = headers.get("X-Auto-Response-Suppress", 200)
    if suppress and _SUPPRESS_AUTO.search(suppress):
        return "header:x-auto-response-suppress"
    if "autoresponder" in (headers.get("X-POST-MessageClass", 200) or "").lower():
        return "header:x-post-messageclass"
    if "autoresponder" in (headers.get("Delivered-To", 200) or "").lower():
        return "header:delivered-to"
    if headers.has("List-Id") or headers.has("List-Unsubscribe"):
        return "mailing-list"
    if headers.has("Feedback-Type") or headers.has("X-Failed-Recipients"):
        return "bounce"
    return_path = headers.get("Return-Path", 200)
    if return_path is not None and return_path.strip() in ("<>", ""):
        return "bounce"
    local = from_address.split("@", 1)[0]
    if local in ("mailer-daemon", "postmaster", "autoresponder", "auto-reply", "autoreply") or (
        local.startswith(("noreply", "no-reply", "donotreply", "do-not-reply"))
    ):
        return "bounce" if local in ("mailer-daemon", "postmaster") else "no-reply-sender"
    if content_type in ("multipart/report", "message/delivery-status",
                        "message/disposition-notification"):
        return "bounce"
    if _AUTO_SUBJECT.match(headers.get("Subject", 300) or ""):
        return "auto-reply-subject"
    return None


def _leaves(msg: Message) -> list[Message]:
    """Leaf parts in document order (at most MAX_PARTS), not descending into attached mails."""
    found: list[Message] = []
    stack: list[Message] = [msg]
    seen = 0
    while stack and seen < MAX_PARTS:
        part = stack.pop()
        seen += 1
        if part.is_multipart() and part.get_content_type() != "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list):
                stack.extend(reversed([p for p in payload[:MAX_PARTS] if isinstance(p, Message)]))
            continue
        found.append(part)
    return found


def _parse_in_chunks(raw: bytes) -> Message:
    """What email.message_from_bytes does, fed in chunks: never the whole mail as one str
    beside its bytes (a third of the peak memory of a 10 MB mail)."""
    parser = BytesFeedParser()
    if len(raw) <= FEED_CHUNK:
        parser.feed(raw)
        return parser.close()
    view = memoryview(raw)
    for start in range(0, len(raw), FEED_CHUNK):
        parser.feed(bytes(view[start : start + FEED_CHUNK]))
    return parser.close()


def parse_mail(raw: bytes, headers_only: bool = False) -> ParsedMail:
    """Parse raw mail bytes; raises MailError only when there is no mail to speak of.

    `headers_only` reads just the header block (for a mail too large to take in, so that it
    can still be answered).
    """
    if not raw or not raw.strip():
        raise MailError("empty message")
    try:
        if headers_only:
            msg = email.parser.BytesHeaderParser().parsebytes(raw[:1_048_576])
        else:
            msg = _parse_in_chunks(raw)
    except MemoryError:
        raise  # not a property of the mail: the worker's limit (see workers.py)
    except Exception as exc:  # the stdlib parser is lenient; anything escaping is fatal
        raise MailError(f"unreadable message: {exc}") from exc
    if not msg.keys():
        raise MailError("no headers")
    headers = _Headers(msg)
    senders = headers.addresses("From")
    from_name, from_address = senders[0] if senders else ("", "")
    reply_to = headers.addresses("Reply-To")
    date: datetime | None
    try:
        date_value = headers.get("Date", 200)
        date = parsedate_to_datetime(date_value) if date_value else None
    except (TypeError, ValueError, IndexError, OverflowError):
        date = None
    text, html, attachments = "", None, []
    if not headers_only:
        leaves = _leaves(msg)
        text, html, body_parts = _bodies(leaves)
        attachments = _attachments(leaves, body_parts)
    thread_index = headers.get("Thread-Index", 1024)
    return ParsedMail(
        message_id=next(iter(msg_ids(headers.raw("Message-ID", 1024))), None),
        in_reply_to=msg_ids(headers.raw("In-Reply-To", 4096))[:REFERENCES_KEPT],
        references=references_of(headers.raw("References", STORED_CHARS + 1)),
        thread_index=thread_index if thread_index and thread_index.isascii() else None,
        subject=(headers.get("Subject", SUBJECT_CHARS * 4) or "")[:SUBJECT_CHARS],
        from_address=from_address,
        from_name=from_name,
        from_addresses=list(dict.fromkeys(a for _, a in senders)),
        reply_to=reply_to[0][1] if reply_to else None,
        to=[a for _, a in headers.addresses("To")],
        cc=[a for _, a in headers.addresses("Cc")],
        date=date,
        auto_submitted=_is_auto(headers, from_address, msg.get_content_type()),
        text=text,
        html=html,
        attachments=attachments,
        size=len(raw),
        headers_only=headers_only,
    )


def _is_attachment(part: Message) -> bool:
    return part.get_content_disposition() == "attachment" or (
        part.get_filename() is not None and part.get_content_disposition() != "inline"
    )


def _bodies(leaves: list[Message]) -> tuple[str, str | None, set[int]]:
    """(text, html, ids of the parts used as body): the first text/plain and text/html that
    are not attachments; the text is the plain part, else the HTML's visible text."""
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
        text = _decode_text(plain_part)[:TEXT_CHARS]
    elif html is not None:
        text = html_to_text(html)[:TEXT_CHARS]
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
            filename = decode_words(_unraw(str(filename)[:HEADER_CHARS]))
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
