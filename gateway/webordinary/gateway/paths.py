"""What a request path asks for: the session (shared parser) and the signed link's token."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from webordinary.contracts.forwarding import (
    NotFound,
    Redirect,
    Session,
    Target,
    cookie_path,
    parse_path,
)
from webordinary.contracts.links import QUERY_PARAMETER

__all__ = ["NotFound", "Redirect", "Session", "Target", "cookie_path", "link_token", "parse",
           "without_token"]


def parse(raw_path: str) -> Target:
    """Classify a raw path with optional query (the shared parser; see contracts.forwarding)."""
    return parse_path(raw_path)


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
