"""What a session's dev server is started with, and the headers the router forwards."""

from __future__ import annotations

import json
from pathlib import Path

from multidict import CIMultiDict

from webordinary.editor.previews.devconfig import RUNNER, dev_config, dev_env, state_dir
from webordinary.editor.previews.proxy import downstream_headers, upstream_headers


def test_dev_config_puts_everything_under_the_prefix(tmp_path: Path) -> None:
    worktree = tmp_path / "sessions" / "thread-a"
    state = state_dir(tmp_path / "sessions", "a")
    doc = dev_config(thread_id="a", worktree=worktree, state=state, port=40001)
    inline = doc["inline"]
    assert doc["root"] == inline["root"] == str(worktree)
    assert inline["base"] == "/"
    assert inline["devToolbar"] == {"enabled": False}
    assert inline["vite"]["base"] == "/session/a"
    assert json.loads(inline["vite"]["define"]["import.meta.env.BASE_URL"]) == "/session/a/"
    assert inline["server"]["host"] == "127.0.0.1"
    assert inline["server"]["port"] == 40001
    assert inline["server"]["allowedHosts"] is True
    assert inline["vite"]["server"]["strictPort"] is True
    json.dumps(doc)


def test_dev_config_keeps_caches_out_of_the_worktree(tmp_path: Path) -> None:
    sessions = tmp_path / "sessions"
    worktree = sessions / "thread-a"
    state = state_dir(sessions, "a")
    assert state == sessions / ".previews" / "thread-a"
    inline = dev_config(thread_id="a", worktree=worktree, state=state, port=1)["inline"]
    for cache in (inline["cacheDir"], inline["vite"]["cacheDir"]):
        assert Path(cache).is_relative_to(state)
        assert not Path(cache).is_relative_to(worktree)


def test_dev_config_passes_allowed_hosts(tmp_path: Path) -> None:
    doc = dev_config(
        thread_id="b", worktree=tmp_path, state=tmp_path / "s", port=1,
        allowed_hosts=["preview.example"],
    )
    assert doc["inline"]["server"]["allowedHosts"] == ["preview.example"]


def test_dev_env_is_quiet_and_has_no_secrets() -> None:
    env = dev_env(
        {
            "PATH": "/usr/bin",
            "HOME": "/home/editor",
            "ANTHROPIC_API_KEY": "sk-secret",
            "WEBORDINARY_GIT_TOKEN": "ghp-secret",
            "AWS_SECRET_ACCESS_KEY": "secret",
        }
    )
    assert env["PATH"] == "/usr/bin"
    assert env["ASTRO_TELEMETRY_DISABLED"] == "1"
    assert env["ASTRO_DISABLE_UPDATE_CHECK"] == "true"
    assert not any("secret" in value for value in env.values())


def test_runner_ships_with_the_package() -> None:
    text = RUNNER.read_text(encoding="utf-8")
    assert "dev(config.inline)" in text


def test_upstream_headers_drop_hop_by_hop_and_add_forwarded() -> None:
    incoming = CIMultiDict(
        [
            ("Host", "preview.example"),
            ("Connection", "keep-alive, X-Private"),
            ("Keep-Alive", "timeout=5"),
            ("X-Private", "drop me"),
            ("Accept-Encoding", "gzip"),
            ("Cookie", "a=1"),
            ("X-Forwarded-For", "10.0.0.1"),
        ]
    )
    out = upstream_headers(incoming, remote="10.0.0.2", scheme="https")
    assert out["Host"] == "preview.example"
    assert out["Accept-Encoding"] == "gzip"
    assert out["Cookie"] == "a=1"
    assert "Connection" not in out
    assert "Keep-Alive" not in out
    assert "X-Private" not in out
    assert out["X-Forwarded-For"] == "10.0.0.1, 10.0.0.2"
    assert out["X-Forwarded-Proto"] == "https"
    assert out["X-Forwarded-Host"] == "preview.example"


def test_websocket_upstream_headers_leave_the_handshake_to_the_client() -> None:
    incoming = CIMultiDict(
        [
            ("Host", "preview.example"),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", "abc"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Protocol", "vite-hmr"),
            ("Origin", "https://preview.example"),
        ]
    )
    out = upstream_headers(incoming, remote=None, scheme="http", websocket=True)
    assert set(out.keys()) == {"Host", "Origin", "X-Forwarded-Proto", "X-Forwarded-Host"}


def test_downstream_headers_keep_encoding_and_length() -> None:
    out = downstream_headers(
        CIMultiDict(
            [
                ("Content-Type", "text/css"),
                ("Content-Encoding", "gzip"),
                ("Content-Length", "12"),
                ("Transfer-Encoding", "chunked"),
                ("Set-Cookie", "a=1"),
                ("Set-Cookie", "b=2"),
            ]
        )
    )
    assert out["Content-Encoding"] == "gzip"
    assert out["Content-Length"] == "12"
    assert "Transfer-Encoding" not in out
    assert out.getall("Set-Cookie") == ["a=1", "b=2"]
