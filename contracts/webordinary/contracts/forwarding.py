"""Forwarding a preview request, without I/O: which session a raw path names, and which
headers cross a proxy hop (the gateway's and the editor pod's preview entry share both)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote

from webordinary.contracts.naming import is_thread_id

SESSION_PREFIX: Final = "/session/"

HOP_BY_HOP: Final = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
    "proxy-connection", "te", "trailer", "trailers", "transfer-encoding", "upgrade",
})
# The client's handshake is redone by the proxy's own websocket client.
WEBSOCKET_HANDSHAKE: Final = frozenset({
    "sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions",
    "sec-websocket-protocol", "sec-websocket-accept",
})
FORWARDED: Final = frozenset({"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host",
                              "forwarded"})

Headers = list[tuple[str, str]]


# -- paths ------------------------------------------------------------------------------------
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
    """Not a preview path, or one that must never reach a dev server."""

    reason: str


Target = Session | Redirect | NotFound


def session_prefix(thread_id: str) -> str:
    """`/session/{id}` without trailing slash: the Vite `base` of that session's dev server."""
    return f"{SESSION_PREFIX}{thread_id}"


def cookie_path(thread_id: str) -> str:
    """A cookie scoped to one session's previews."""
    return f"{session_prefix(thread_id)}/"


def parse_path(raw_path: str, blocked: tuple[str, ...] = ()) -> Target:
    """Classify a raw (still percent-encoded) path with optional query string.

    Thread ids must be valid as they are, never after decoding; dot segments, backslashes and
    NULs are refused after decoding, so that no encoding trick leaves the session's prefix.
    Tails starting with one of `blocked` (after decoding) are refused too.
    """
    path, _, query = raw_path.partition("?")
    if not path.startswith(SESSION_PREFIX):
        return NotFound("not a preview address")
    thread_id, slash, tail = path[len(SESSION_PREFIX):].partition("/")
    if not is_thread_id(thread_id):
        return NotFound("not a valid preview address")
    if not slash:
        return Redirect(f"{session_prefix(thread_id)}/" + (f"?{query}" if query else ""))
    decoded = unquote(tail)
    if "\\" in decoded or "\x00" in decoded:
        return NotFound("not a valid preview address")
    if any(segment in (".", "..") for segment in decoded.split("/")):
        return NotFound("not a valid preview address")
    if blocked and decoded.startswith(blocked):
        return NotFound("not served")
    return Session(thread_id)


# -- headers ----------------------------------------------------------------------------------
def connection_options(headers: Iterable[tuple[str, str]]) -> frozenset[str]:
    """Header names listed in Connection: hop-by-hop for this hop only (RFC 9110 7.6.1)."""
    names: set[str] = set()
    for key, value in headers:
        if key.lower() == "connection":
            names.update(token.strip().lower() for token in value.split(",") if token.strip())
    return frozenset(names)


def strip_cookie(value: str, name: str) -> str | None:
    """A Cookie header without cookie `name` (None when nothing is left)."""
    if name not in value:
        return value
    kept = [part.strip() for part in value.split(";")
            if part.strip() and part.strip().partition("=")[0].strip() != name]
    return "; ".join(kept) or None


def request_headers(
    headers: Mapping[str, str], *, remote: str | None, scheme: str, trust_forwarded: bool,
    websocket: bool = False, drop_cookie: str | None = None,
) -> Headers:
    """Request headers for the next hop: hop-by-hop ones (and those Connection names) dropped,
    Host kept, cookie `drop_cookie` removed, X-Forwarded-For/-Proto/-Host set.

    `trust_forwarded`: the previous hop is a proxy of ours, so its X-Forwarded-* headers are
    kept and extended; otherwise the client's are replaced (a client cannot forge its
    address). `Forwarded` never passes: no hop of ours writes one, so it is a client's.
    """
    pairs = list(headers.items())
    named = connection_options(pairs)
    out: Headers = []
    seen: dict[str, str] = {}  # the first X-Forwarded-* and Host values
    for name, value in pairs:
        lower = name.lower()
        if lower in HOP_BY_HOP or lower in named or (websocket and lower in WEBSOCKET_HANDSHAKE):
            continue
        if lower in FORWARDED or lower == "host":
            seen.setdefault(lower, value)
            if lower != "host":
                continue
        if lower == "cookie" and drop_cookie:
            stripped = strip_cookie(value, drop_cookie)
            if stripped:
                out.append((name, stripped))
            continue
        out.append((name, value))
    prior = seen.get("x-forwarded-for") if trust_forwarded else None
    if remote:
        out.append(("X-Forwarded-For", f"{prior}, {remote}" if prior else remote))
    elif prior:
        out.append(("X-Forwarded-For", prior))
    proto = seen.get("x-forwarded-proto") if trust_forwarded else None
    out.append(("X-Forwarded-Proto", proto or scheme))
    host = (seen.get("x-forwarded-host") if trust_forwarded else None) or seen.get("host")
    if host:
        out.append(("X-Forwarded-Host", host))
    return out


def response_headers(headers: Mapping[str, str]) -> Headers:
    """Response headers for the client: everything but hop-by-hop ones."""
    pairs = list(headers.items())
    named = connection_options(pairs)
    return [(name, value) for name, value in pairs
            if name.lower() not in HOP_BY_HOP and name.lower() not in named]
