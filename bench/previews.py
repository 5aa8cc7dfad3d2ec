"""Preview benchmark: first preview byte for a new session, restart, RSS per dev server.

Run: `./dev bench previews [--rounds N]`. Real `astro dev` on the fixture site, in a temporary
workspace laid out like the editor's (git worktrees + shared node_modules). Target: a new
session's first preview byte < 4 s.
"""

from __future__ import annotations

import os
import sys

# Running a script puts bench/ first on sys.path, where a bench named like a stdlib module
# (bench/operator.py) would shadow it: drop it before anything else is imported.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import aiohttp
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.plugins.astro_site import make_astro_workspace
from webordinary.editor.previews import Previews

TARGET_FIRST_BYTE = 4.0


def dev_server_rss(pid: int) -> int:
    """Resident bytes of a dev server: node plus its children (esbuild)."""
    root = psutil.Process(pid)
    total = 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


async def first_preview_byte(previews: Previews, thread_id: str) -> float:
    """Seconds from `activate` of a stopped session to the first byte of its page."""
    began = time.monotonic()
    await previews.activate(thread_id)
    async with (
        aiohttp.ClientSession() as client,
        client.get(f"http://127.0.0.1:{previews.port}/session/{thread_id}/") as resp,
    ):
        await resp.content.readany()
        assert resp.status == 200, resp.status
    return time.monotonic() - began


async def wake_by_request(previews: Previews, thread_id: str) -> float:
    """Seconds from a browser's first request (starting page) to the first 200 byte."""
    url = f"http://127.0.0.1:{previews.port}/session/{thread_id}/"
    began = time.monotonic()
    async with aiohttp.ClientSession() as client:
        while True:
            async with client.get(url) as resp:
                await resp.content.readany()
                if resp.status == 200:
                    return time.monotonic() - began
            await asyncio.sleep(0.1)


async def stop(previews: Previews, thread_id: str, spare: str) -> None:
    """Stop `thread_id`'s server by activating `spare` with a cap of 1."""
    await previews.activate(spare)
    assert thread_id not in previews.active_sessions()


def row(name: str, values: Sequence[float], fmt: Callable[[float], str], target: str) -> str:
    cells = [fmt(min(values)), fmt(statistics.median(values)), fmt(max(values))]
    return f"| {name:<44} | {' | '.join(f'{c:>8}' for c in cells)} | {target:<8} |"


async def run(rounds: int) -> int:
    load_before = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    threads = [f"n{i}" for i in range(rounds)]
    with tempfile.TemporaryDirectory(prefix="bench-previews-") as tmp:
        sessions = make_astro_workspace(Path(tmp), [*threads, "spare"])
        previews = Previews(sessions, port=0, metrics_port=0, host="127.0.0.1", max_active=1)
        await previews.start()
        for thread in [*threads, "spare"]:
            previews.register(thread, sessions / f"thread-{thread}")
        cold: list[float] = []
        warm: list[float] = []
        wake: list[float] = []
        rss: list[float] = []
        try:
            for thread in threads:
                cold.append(await first_preview_byte(previews, thread))
                pid = previews.server_pid(thread)
                assert pid is not None
                await asyncio.sleep(1.0)
                rss.append(dev_server_rss(pid) / 2**20)
                await stop(previews, thread, "spare")
                warm.append(await first_preview_byte(previews, thread))
                await stop(previews, thread, "spare")
                wake.append(await wake_by_request(previews, thread))
        finally:
            await previews.close()
    seconds: Callable[[float], str] = lambda v: f"{v:.2f} s"  # noqa: E731
    mebibytes: Callable[[float], str] = lambda v: f"{v:.0f} MiB"  # noqa: E731
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"previews benchmark, {rounds} rounds (real astro dev, fixture site)")
    print(f"{os.cpu_count()} cores, load average before/after: {load_before} / {load}")
    print(f"| {'measure':<44} | {'min':>8} | {'median':>8} | {'max':>8} | {'target':<8} |")
    print(f"|{'-' * 46}|{'-' * 10}|{'-' * 10}|{'-' * 10}|{'-' * 10}|")
    print(row("first preview byte, new session (activate)", cold, seconds, "< 4 s"))
    print(row("first preview byte, restart (warm caches)", warm, seconds, "< 4 s"))
    print(row("wake by browser request (starting page)", wake, seconds, ""))
    print(row("RSS per dev server (node + esbuild)", rss, mebibytes, ""))
    return 0 if statistics.median(cold) < TARGET_FIRST_BYTE else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    return asyncio.run(run(args.rounds))


if __name__ == "__main__":
    raise SystemExit(main())
