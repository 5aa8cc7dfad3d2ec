"""Path parsing and host checks of the preview entry point."""

from __future__ import annotations

import pytest

from webordinary.editor.previews.routing import (
    NotFoundRoute,
    RedirectRoute,
    SessionRoute,
    host_allowed,
    parse_path,
    session_prefix,
)


@pytest.mark.parametrize(
    ("raw", "thread"),
    [
        ("/session/a/", "a"),
        ("/session/1a2b3c4d/about/", "1a2b3c4d"),
        ("/session/x-y/@vite/client", "x-y"),
        ("/session/a/?token=abc", "a"),
        ("/session/a/_image?href=%2F%40fs%2Fsrc%2Fa.png&w=32", "a"),
        ("/session/a/src/pages/index.astro?astro&type=style&index=0&lang.css", "a"),
    ],
)
def test_session_paths_route_to_their_session(raw: str, thread: str) -> None:
    assert parse_path(raw) == SessionRoute(thread)


@pytest.mark.parametrize(
    ("raw", "location"),
    [
        ("/session/a", "/session/a/"),
        ("/session/a?x=1&y=2", "/session/a/?x=1&y=2"),
    ],
)
def test_missing_trailing_slash_redirects(raw: str, location: str) -> None:
    assert parse_path(raw) == RedirectRoute(location)


@pytest.mark.parametrize(
    "raw",
    [
        "/",
        "/about/",
        "/sessions/a/",
        "/session/",
        "/session//",
        "/session/A/",
        "/session/a_b/",
        "/session/-a/",
        "/session/%61/",
        "/session/" + "a" * 41 + "/",
        "/session/a/../b/",
        "/session/a/%2e%2e/b/",
        "/session/a/%2E%2E%2Fb/",
        "/session/a/x/..",
        "/session/a/./x",
        "/session/a/..%5c..%5cetc",
        "/session/a/%00",
        "/session/a/__open-in-editor?file=/etc/passwd",
    ],
)
def test_everything_else_is_not_found(raw: str) -> None:
    assert isinstance(parse_path(raw), NotFoundRoute)


def test_session_prefix_has_no_trailing_slash() -> None:
    assert session_prefix("a") == "/session/a"


@pytest.mark.parametrize(
    ("host", "allowed", "ok"),
    [
        ("evil.example", None, True),
        ("preview.webordinary.com", ("preview.webordinary.com",), True),
        ("preview.webordinary.com:443", ("preview.webordinary.com",), True),
        ("PREVIEW.webordinary.com", ("preview.webordinary.com",), True),
        ("x.webordinary.com", (".webordinary.com",), True),
        ("webordinary.com.evil.example", (".webordinary.com",), False),
        ("evil.example", ("preview.webordinary.com",), False),
        ("127.0.0.1:4321", ("preview.webordinary.com",), True),
        ("localhost", ("preview.webordinary.com",), True),
        ("[::1]:4321", ("preview.webordinary.com",), True),
        (None, ("preview.webordinary.com",), False),
        ("", ("preview.webordinary.com",), False),
    ],
)
def test_host_allowed(host: str | None, allowed: tuple[str, ...] | None, ok: bool) -> None:
    assert host_allowed(host, allowed) is ok
