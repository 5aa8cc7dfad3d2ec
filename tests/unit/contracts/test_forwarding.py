"""The shared proxy rules of the gateway and the editor pod's preview entry: session paths and
the headers that cross a hop."""

from __future__ import annotations

import pytest

from webordinary.contracts.forwarding import (
    NotFound,
    Redirect,
    Session,
    connection_options,
    cookie_path,
    parse_path,
    request_headers,
    response_headers,
    session_prefix,
    strip_cookie,
)


@pytest.mark.parametrize(("raw", "expected"), [
    ("/session/abc123/", Session("abc123")),
    ("/session/abc123/src/pages/index.astro?t=1", Session("abc123")),
    ("/session/x-y/@vite/client", Session("x-y")),
    ("/session/a/_image?href=%2F%40fs%2Fsrc%2Fa.png&w=32", Session("a")),
    ("/session/abc123", Redirect("/session/abc123/")),
    ("/session/abc123?access=x&y=2", Redirect("/session/abc123/?access=x&y=2")),
    ("/session/ABC/", NotFound("not a valid preview address")),
    ("/session/%61/", NotFound("not a valid preview address")),
    ("/session//", NotFound("not a valid preview address")),
    ("/session/abc/%2e%2e/other/", NotFound("not a valid preview address")),
    ("/session/abc/%2E%2E%2Fb/", NotFound("not a valid preview address")),
    ("/session/abc/x/..", NotFound("not a valid preview address")),
    ("/session/abc/./x", NotFound("not a valid preview address")),
    ("/session/abc/..%5c..%5c/", NotFound("not a valid preview address")),
    ("/session/abc/%00/", NotFound("not a valid preview address")),
    ("/sessions/abc/", NotFound("not a preview address")),
    ("/other", NotFound("not a preview address")),
    ("/", NotFound("not a preview address")),
])
def test_parse_path(raw: str, expected: object) -> None:
    assert parse_path(raw) == expected


def test_blocked_tails_are_refused_after_decoding() -> None:
    blocked = ("__open-in-editor",)
    assert parse_path("/session/a/__open-in-editor?file=/etc/passwd") == Session("a")
    for raw in ("/session/a/__open-in-editor?file=/etc/passwd", "/session/a/%5F_open-in-editor"):
        assert parse_path(raw, blocked) == NotFound("not served")
    assert parse_path("/session/a/about/", blocked) == Session("a")


def test_prefixes() -> None:
    assert session_prefix("a") == "/session/a"
    assert cookie_path("a") == "/session/a/"


def test_strip_cookie() -> None:
    header = "theme=dark; wo=v1.a.1.b; other=1"
    assert strip_cookie(header, "wo") == "theme=dark; other=1"
    assert strip_cookie("wo=v1", "wo") is None
    assert strip_cookie("theme=dark", "wo") == "theme=dark"
    assert strip_cookie("woo=1; wo=2", "wo") == "woo=1"


def test_connection_options_are_case_insensitive() -> None:
    assert connection_options([("connection", "Keep-Alive, X-Secret"), ("Host", "h")]) == {
        "keep-alive", "x-secret"}


INCOMING = {"Host": "edit.example.com", "Connection": "keep-alive, X-Secret",
            "Keep-Alive": "300", "X-Secret": "1", "Te": "trailers", "Upgrade": "h2c",
            "Proxy-Authorization": "Basic x", "Cookie": "wo=tok; theme=dark",
            "Accept": "text/html", "X-Forwarded-For": "203.0.113.9",
            "X-Forwarded-Proto": "https", "X-Forwarded-Host": "forged.example",
            "Forwarded": "for=203.0.113.9"}


def test_request_headers_from_a_client_replace_its_forwarded_headers() -> None:
    out = dict(request_headers(INCOMING, remote="10.0.0.2", scheme="http",
                               trust_forwarded=False, drop_cookie="wo"))
    assert out == {"Host": "edit.example.com", "Cookie": "theme=dark", "Accept": "text/html",
                   "X-Forwarded-For": "10.0.0.2", "X-Forwarded-Proto": "http",
                   "X-Forwarded-Host": "edit.example.com"}


def test_request_headers_behind_a_trusted_proxy_extend_its_forwarded_headers() -> None:
    out = request_headers(INCOMING, remote="10.0.0.2", scheme="http", trust_forwarded=True)
    names = [name for name, _ in out]
    assert len(names) == len(set(names)), "each forwarded header once"
    got = dict(out)
    assert got["X-Forwarded-For"] == "203.0.113.9, 10.0.0.2"
    assert got["X-Forwarded-Proto"] == "https"
    assert got["X-Forwarded-Host"] == "forged.example"
    assert "Forwarded" not in got, "no hop of ours writes one: it would be the client's"
    assert got["Cookie"] == "wo=tok; theme=dark", "no cookie dropped unless asked"
    for hop in ("Connection", "Keep-Alive", "X-Secret", "Te", "Upgrade", "Proxy-Authorization"):
        assert hop not in got


def test_request_headers_without_a_remote_keep_a_trusted_chain() -> None:
    got = dict(request_headers({"host": "h", "x-forwarded-for": "1.2.3.4"}, remote=None,
                               scheme="https", trust_forwarded=True))
    assert got["X-Forwarded-For"] == "1.2.3.4"
    assert got["X-Forwarded-Proto"] == "https"
    assert got["X-Forwarded-Host"] == "h"


def test_websocket_requests_leave_the_handshake_to_the_proxy() -> None:
    incoming = {"Host": "h", "Upgrade": "websocket", "Connection": "Upgrade",
                "Sec-WebSocket-Key": "k", "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Protocol": "vite-hmr", "Origin": "https://h"}
    out = dict(request_headers(incoming, remote=None, scheme="http", trust_forwarded=True,
                               websocket=True))
    assert set(out) == {"Host", "Origin", "X-Forwarded-Proto", "X-Forwarded-Host"}
    plain = dict(request_headers(incoming, remote=None, scheme="http", trust_forwarded=True))
    assert "Sec-WebSocket-Key" in plain


def test_response_headers_drop_hop_by_hop_and_connection_options() -> None:
    out = response_headers({"Content-Type": "text/css", "Transfer-Encoding": "chunked",
                            "Connection": "close, X-Hop", "X-Hop": "1", "Set-Cookie": "a=1",
                            "Content-Encoding": "gzip", "Content-Length": "10"})
    assert out == [("Content-Type", "text/css"), ("Set-Cookie", "a=1"),
                   ("Content-Encoding", "gzip"), ("Content-Length", "10")]
