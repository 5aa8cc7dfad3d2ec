"""What a request path asks for: pure parsing of the raw (still percent-encoded) path."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qsl, unquote, urlencode

from webordinary.contracts.links import QUERY_PARAMETER
from webordinary.contracts.naming import is_thread_id

SESSION_PREFIX: Final = "/session/"


@dataclass(frozen=True)
class Session:
    """A path inside one session's preview; it is forwarded upstream unchanged."""

    thread_id: str


@dataclass(frozen=True)
class Redirect:
    """`/session/{id}` without the trailing slash: previews are served under `.../`."""

    location: str


@dataclass(frozen=True)
class NotFound:
    reason: str


Target = Session | Redirect | NotFound


def parse(raw_path: str) -> Target:
    """Classify a raw path with optional query. Thread ids must be valid as they are (never
    after decoding); dot segments, backslashes and NULs are refused after decoding, so no
    encoding trick leaves the session's prefix."""
    path, _, query = raw_path.partition("?")
    if not path.startswith(SESSION_PREFIX):
        return NotFound("not a preview address")
    thread_id, slash, tail = path[len(SESSION_PREFIX):].partition("/")
    if not is_thread_id(thread_id):
        return NotFound("not a valid preview address")
    if not slash:
        return Redirect(f"{SESSION_PREFIX}{thread_id}/" + (f"?{query}" if query else ""))
    decoded = unquote(tail)
    if "\\" in decoded or "\x00" in decoded:
        return NotFound("not a valid preview address")
    if any(segment in (".", "..") for segment in decoded.split("/")):
        return NotFound("not a valid preview address")
    return Session(thread_id)


def cookie_path(thread_id: str) -> str:
    """The cookie's scope: this session's previews only."""
    return f"{SESSION_PREFIX}{thread_id}/"


def link_token(raw_path: str) -> str | None:
    """The signed-link token in the query string, if any."""
    _, _, query = raw_path.partition("?")
    if QUERY_PARAMETER not in query:
        return None
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name == QUERY_PARAMETER:
            return value
    return None


def without_token(raw_path: str) -> str:
    """The clean URL to redirect to once the link's token is in a cookie."""
    path, _, query = raw_path.partition("?")
    rest = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != QUERY_PARAMETER]
    return path + (f"?{urlencode(rest)}" if rest else "")
