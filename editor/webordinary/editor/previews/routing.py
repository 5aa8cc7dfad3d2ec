"""Where a request to the preview entry point goes: pure parsing of the raw request path."""

from __future__ import annotations

from typing import Final

from webordinary.contracts import forwarding
from webordinary.contracts.forwarding import (
    SESSION_PREFIX,
    NotFound,
    Redirect,
    Session,
    Target,
    session_prefix,
)

__all__ = ["BLOCKED_TAILS", "SESSION_PREFIX", "NotFoundRoute", "RedirectRoute", "Route",
           "SessionRoute", "host_allowed", "parse_path", "session_prefix"]

# Dev-server endpoints that act on the pod rather than serve the site (launches an editor).
BLOCKED_TAILS: Final = ("__open-in-editor",)

SessionRoute = Session
RedirectRoute = Redirect
NotFoundRoute = NotFound
Route = Target


def parse_path(raw_path: str) -> Route:
    """Classify a raw path (the shared parser), refusing the dev server's own endpoints."""
    return forwarding.parse_path(raw_path, BLOCKED_TAILS)


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
