"""Where a request to the preview entry point goes: pure parsing of the raw request path."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote

from webordinary.contracts.naming import is_thread_id

SESSION_PREFIX: Final = "/session/"
# Dev-server endpoints that act on the pod rather than serve the site (launches an editor).
BLOCKED_TAILS: Final = ("__open-in-editor",)


@dataclass(frozen=True)
class SessionRoute:
    """A path inside one session's preview; it is forwarded upstream unchanged."""

    thread_id: str


@dataclass(frozen=True)
class RedirectRoute:
    """`/session/{id}` without the trailing slash: the dev server only serves under `.../`."""

    location: str


@dataclass(frozen=True)
class NotFoundRoute:
    """Not a preview path, or one that must never reach a dev server."""

    reason: str


Route = SessionRoute | RedirectRoute | NotFoundRoute


def session_prefix(thread_id: str) -> str:
    """`/session/{id}` without trailing slash: the Vite `base` of that session's dev server."""
    return f"{SESSION_PREFIX}{thread_id}"


def parse_path(raw_path: str) -> Route:
    """Classify a raw (still percent-encoded) path with optional query string.

    Dot segments are refused after decoding so that no encoding trick leaves the session's
    prefix; thread ids must be valid as they are, never after decoding.
    """
    path, _, query = raw_path.partition("?")
    if not path.startswith(SESSION_PREFIX):
        return NotFoundRoute("not a preview path")
    thread_id, slash, tail = path[len(SESSION_PREFIX) :].partition("/")
    if not is_thread_id(thread_id):
        return NotFoundRoute("invalid session id")
    if not slash:
        suffix = f"?{query}" if query else ""
        return RedirectRoute(f"{session_prefix(thread_id)}/{suffix}")
    decoded = unquote(tail)
    if "\\" in decoded or "\x00" in decoded:
        return NotFoundRoute("invalid path")
    if any(segment in (".", "..") for segment in decoded.split("/")):
        return NotFoundRoute("invalid path")
    if decoded.startswith(BLOCKED_TAILS):
        return NotFoundRoute("not served")
    return SessionRoute(thread_id)


def host_allowed(host_header: str | None, allowed: tuple[str, ...] | None) -> bool:
    """Host check of the entry point; None allows every host (the ingress filters them)."""
    if allowed is None:
        return True
    if not host_header:
        return False
    host = host_header.strip().lower()
    if host.startswith("["):
        name = host[: host.find("]") + 1]
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    if name in ("localhost", "127.0.0.1", "[::1]"):
        return True
    return any(
        name == entry or (entry.startswith(".") and name.endswith(entry)) for entry in allowed
    )
