"""Preview benchmark: first preview byte for a new session, restart, RSS per dev server.

Run: `./dev bench previews [--rounds N]`. Real `astro dev` on the fixture site, in a temporary
workspace laid out like the editor's (git worktrees + shared node_modules), with the warm
standby process (default) and without it. Target: a new session's first preview byte < 4 s.
Exit status 1 when the standby median misses the target. CPU-bound: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its live children."""
    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
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


async def settle(previews: Previews, standby: bool) -> None:
    """Wait until the warm spare is back (its import would otherwise overlap the next start)."""
    for _ in range(300):
        if not standby or previews.standby_pid() is not None:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(6.0 if standby else 1.0)


def row(name: str, values: Sequence[float], fmt: Callable[[float], str], target: str) -> str:
    cells = [fmt(min(values)), fmt(statistics.median(values)), fmt(max(values))]
    return f"| {name:<44} | {' | '.join(f'{c:>8}' for c in cells)} | {target:<8} |"


async def measure(rounds: int, standby: bool) -> dict[str, list[float]]:
    threads = [f"n{i}" for i in range(rounds)]
    out: dict[str, list[float]] = {"new": [], "wake": [], "rss": [], "spare": [], "cpu": []}
    with tempfile.TemporaryDirectory(prefix="bench-previews-") as tmp:
        sessions = make_astro_workspace(Path(tmp), [*threads, "spare"])
        previews = Previews(
            sessions, port=0, metrics_port=0, host="127.0.0.1", max_active=1, standby=standby
        )
        await previews.start()
        for thread in [*threads, "spare"]:
            previews.register(thread, sessions / f"thread-{thread}")
        try:
            for thread in threads:
                await settle(previews, standby)
                spare_pid = previews.standby_pid()
                spent = 0.0
                if spare_pid is not None:
                    out["spare"].append(dev_server_rss(spare_pid) / 2**20)
                    spent = cpu_seconds(spare_pid)
                out["new"].append(await first_preview_byte(previews, thread))
                pid = previews.server_pid(thread)
                assert pid is not None
                out["cpu"].append(cpu_seconds(pid) - (spent if pid == spare_pid else 0.0))
                await asyncio.sleep(1.0)
                out["rss"].append(dev_server_rss(pid) / 2**20)
                await stop(previews, thread, "spare")
                await settle(previews, standby)
                out["wake"].append(await wake_by_request(previews, thread))
        finally:
            await previews.close()
    return out


async def run(rounds: int) -> int:
    load_before = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    warm = await measure(rounds, standby=True)
    cold = await measure(rounds, standby=False)
    seconds: Callable[[float], str] = lambda v: f"{v:.2f} s"  # noqa: E731
    mebibytes: Callable[[float], str] = lambda v: f"{v:.0f} MiB"  # noqa: E731
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"previews benchmark, {rounds} rounds (real astro dev, fixture site)")
    print(f"{os.cpu_count()} cores, load average before/after: {load_before} / {load}")
    print(f"| {'measure':<44} | {'min':>8} | {'median':>8} | {'max':>8} | {'target':<8} |")
    print(f"|{'-' * 46}|{'-' * 10}|{'-' * 10}|{'-' * 10}|{'-' * 10}|")
    print(row("first preview byte, new session (standby)", warm["new"], seconds, "< 4 s"))
    print(row("first preview byte, new session (cold)", cold["new"], seconds, "< 4 s"))
    print(row("CPU until first byte, new session (standby)", warm["cpu"], seconds, ""))
    print(row("CPU until first byte, new session (cold)", cold["cpu"], seconds, ""))
    print(row("wake by browser request, standby (polling)", warm["wake"], seconds, ""))
    print(row("wake by browser request, cold (polling)", cold["wake"], seconds, ""))
    print(row("RSS per dev server (node + esbuild)", warm["rss"] + cold["rss"], mebibytes, ""))
    if warm["spare"]:
        print(row("RSS of the idle standby process", warm["spare"], mebibytes, ""))
    return 0 if statistics.median(warm["new"]) < TARGET_FIRST_BYTE else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    return asyncio.run(run(args.rounds))


if __name__ == "__main__":
    raise SystemExit(main())
