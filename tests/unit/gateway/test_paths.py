"""Request paths and headers: what reaches an editor and what never does."""

from __future__ import annotations

import pytest

from webordinary.gateway.paths import NotFound, Redirect, Session, link_token, parse, without_token
from webordinary.gateway.proxy import (
    downstream_headers,
    read_cookie,
    strip_cookie,
    upstream_headers,
)


@pytest.mark.parametrize(("raw", "expected"), [
    ("/session/abc123/", Session("abc123")),
    ("/session/abc123/src/pages/index.astro?t=1", Session("abc123")),
    ("/session/abc123", Redirect("/session/abc123/")),
    ("/session/abc123?access=x", Redirect("/session/abc123/?access=x")),
    ("/session/ABC/", NotFound("not a valid preview address")),
    ("/session/abc/%2e%2e/other/", NotFound("not a valid preview address")),
    ("/session/abc/..%5c..%5c/", NotFound("not a valid preview address")),
    ("/session/abc/%00/", NotFound("not a valid preview address")),
    ("/other", NotFound("not a preview address")),
    ("/", NotFound("not a preview address")),
])
def test_parse(raw: str, expected: object) -> None:
    assert parse(raw) == expected


def test_link_token_and_clean_url() -> None:
    assert link_token("/session/a/?access=v1.x.1.y&page=2") == "v1.x.1.y"
    assert link_token("/session/a/?page=2") is None
    assert without_token("/session/a/?access=v1.x.1.y&page=2") == "/session/a/?page=2"
    assert without_token("/session/a/about/?access=v1") == "/session/a/about/"


def test_cookie_helpers_never_leak_the_token_upstream() -> None:
    header = "theme=dark; webordinary_preview=v1.a.1.b; other=1"
    assert read_cookie(header) == "v1.a.1.b"
    assert strip_cookie(header) == "theme=dark; other=1"
    assert strip_cookie("webordinary_preview=v1.a.1.b") is None
    assert read_cookie("theme=dark") is None
    assert read_cookie('bad"cookie') is None


def test_upstream_headers_drop_hop_by_hop_and_add_forwarded() -> None:
    incoming = {"Host": "edit.example.com", "Connection": "keep-alive, X-Secret",
                "Keep-Alive": "300", "X-Secret": "1", "Te": "trailers",
                "Cookie": "webordinary_preview=tok", "Accept": "text/html",
                "X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
    out = upstream_headers(incoming, remote="10.0.0.2", scheme="http", trust_forwarded=True)
    assert "Connection" not in out
    assert "Keep-Alive" not in out
    assert "X-Secret" not in out
    assert "Te" not in out
    assert "Cookie" not in out
    assert out["Host"] == "edit.example.com"
    assert out["X-Forwarded-For"] == "203.0.113.9, 10.0.0.2"
    assert out["X-Forwarded-Proto"] == "https"
    assert out["X-Forwarded-Host"] == "edit.example.com"
    direct = upstream_headers(incoming, remote="10.0.0.2", scheme="http", trust_forwarded=False)
    assert direct["X-Forwarded-For"] == "10.0.0.2", "a client cannot forge its address"
    assert direct["X-Forwarded-Proto"] == "http"
    ws = upstream_headers({"Upgrade": "websocket", "Sec-WebSocket-Key": "k",
                           "Sec-WebSocket-Protocol": "vite-hmr"}, remote=None, scheme="http",
                          trust_forwarded=True, websocket=True)
    assert "Sec-WebSocket-Key" not in ws
    assert "Upgrade" not in ws


def test_downstream_headers() -> None:
    out = downstream_headers({"Content-Type": "text/css", "Transfer-Encoding": "chunked",
                              "Connection": "close", "Set-Cookie": "a=1"})
    assert dict(out) == {"Content-Type": "text/css", "Set-Cookie": "a=1"}
