"""Previews: argument checks and answers that need no dev server (real HTTP on port 0)."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from webordinary.editor.previews import Previews, UnknownSessionError


def make(tmp_path: Path, max_active: int = 2) -> Previews:
    return Previews(tmp_path, port=0, metrics_port=0, host="127.0.0.1", max_active=max_active)


def test_cap_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_active"):
        make(tmp_path, max_active=0)


def test_register_checks_thread_id_and_worktree(tmp_path: Path) -> None:
    previews = make(tmp_path)
    (tmp_path / "thread-a").mkdir()
    with pytest.raises(ValueError, match="invalid thread id"):
        previews.register("../a", tmp_path / "thread-a")
    with pytest.raises(ValueError, match="does not exist"):
        previews.register("b", tmp_path / "thread-b")
    previews.register("a", tmp_path / "thread-a")
    assert previews.sessions() == {"a": (tmp_path / "thread-a").resolve()}
    assert previews.active_sessions() == []
    assert not previews.is_running("a")
    assert previews.server_port("a") is None


async def test_activate_of_an_unknown_session_is_a_clear_error(tmp_path: Path) -> None:
    previews = make(tmp_path)
    with pytest.raises(UnknownSessionError, match="'nobody' is not registered"):
        await previews.activate("nobody")


async def test_router_answers_without_dev_servers(tmp_path: Path) -> None:
    previews = make(tmp_path)
    await previews.start()
    try:
        with pytest.raises(RuntimeError, match="runs once"):
            await previews.start()
        base = f"http://127.0.0.1:{previews.port}"
        async with aiohttp.ClientSession(base) as client:
            async with client.get("/session/zz/") as resp:
                assert resp.status == 404
                assert resp.content_type == "text/html"
            async with client.get("/session/zz", allow_redirects=False) as resp:
                assert resp.status == 308
                assert resp.headers["Location"] == "/session/zz/"
        async with aiohttp.ClientSession(f"http://127.0.0.1:{previews.metrics_port}") as client:
            async with client.get("/healthz") as resp:
                assert resp.status == 200
            async with client.get("/readyz") as resp:
                assert resp.status == 503
            previews.set_ready(True)
            async with client.get("/readyz") as resp:
                assert resp.status == 200
            async with client.get("/metrics") as resp:
                assert "webordinary_preview_active_servers" in await resp.text()
    finally:
        await previews.close()
    await previews.close()
