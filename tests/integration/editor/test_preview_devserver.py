"""The dev server process adapter on real child processes: readiness errors, SIGKILL fallback."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from webordinary.editor.previews.devserver import DevServer, PreviewStartError, free_port


async def spawn(script: str, log: Path, port: int = 1) -> DevServer:
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            "node", "-e", script, stdout=out, stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
    return DevServer("t", port, process, log)


def gone(pid: int) -> bool:
    """No such process, or only a zombie waiting for a reaper that is not ours."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


async def test_stop_kills_a_server_that_ignores_sigterm(tmp_path: Path) -> None:
    server = await spawn(
        "process.on('SIGTERM', () => console.log('ignored')); console.log('up');"
        "setInterval(() => {}, 1000);",
        tmp_path / "dev.log",
    )
    await asyncio.sleep(0.5)
    began = time.monotonic()
    await server.stop(grace=0.5)
    assert 0.5 <= time.monotonic() - began < 3
    assert not server.alive
    assert server.stopping
    assert gone(server.pid)
    assert "ignored" in server.log_tail()


async def test_stop_takes_the_whole_process_group(tmp_path: Path) -> None:
    server = await spawn(
        "const { spawn } = require('node:child_process');"
        "const child = spawn('sleep', ['30'], { stdio: 'ignore' });"
        "console.log('child', child.pid); setInterval(() => {}, 1000);",
        tmp_path / "dev.log",
    )
    for _ in range(50):
        if "child" in server.log_tail():
            break
        await asyncio.sleep(0.1)
    child = int(server.log_tail().split("child", 1)[1].split()[0])
    await server.stop(grace=1.0)
    for _ in range(20):
        if gone(child):
            break
        await asyncio.sleep(0.05)
    assert gone(child)


async def test_wait_ready_reports_an_early_exit_with_its_log(tmp_path: Path) -> None:
    server = await spawn("console.error('Error: astro is missing'); process.exit(3);",
                         tmp_path / "dev.log")
    with pytest.raises(PreviewStartError, match="exited with status 3") as failure:
        await server.wait_ready("/session/t/", within=10)
    assert "astro is missing" in failure.value.log_tail


async def test_wait_ready_gives_up_after_its_deadline(tmp_path: Path) -> None:
    server = await spawn("setInterval(() => {}, 1000);", tmp_path / "dev.log", port=free_port())
    try:
        with pytest.raises(PreviewStartError, match="no answer within"):
            await server.wait_ready("/session/t/", within=0.5)
    finally:
        await server.stop(grace=0.5)


async def test_wait_ready_returns_on_any_http_answer(tmp_path: Path) -> None:
    port = free_port()
    server = await spawn(
        "require('node:http').createServer((q, s) => { s.statusCode = 500; s.end('boom'); })"
        f".listen({port}, '127.0.0.1');",
        tmp_path / "dev.log",
        port=port,
    )
    try:
        await server.wait_ready("/session/t/", within=10)
        assert server.base_url == f"http://127.0.0.1:{port}"
    finally:
        await server.stop(grace=0.5)
