"""`./dev up` as a newcomer meets it: taken ports, a dying component, nothing left behind.

`./dev up` runs in a session of its own here, so "nothing left behind" is checked as: no
process of that session is alive once it has exited.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def session_members(sid: int) -> list[str]:
    """Processes (pid and command) still alive in session `sid`."""
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) == sid and fields[0] != "Z":
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                alive.append(f"{entry.name} {command[:160]}")
    return alive


def process_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, start time) of every live process."""
    table: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if fields[0] != "Z":
                    table[int(entry.name)] = (int(fields[1]), fields[19])
    return table


def descendants(root: int) -> set[tuple[int, str]]:
    """(pid, start time) of every live descendant of `root`, whatever its session or uid."""
    table = process_table()
    found: set[tuple[int, str]] = set()
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, started) in table.items():
            if ppid == parent and (pid, started) not in found:
                found.add((pid, started))
                frontier.append(pid)
    return found


def still_alive(seen: set[tuple[int, str]]) -> list[int]:
    table = process_table()
    return [pid for pid, started in seen if pid in table and table[pid][1] == started]


def session_pids(sid: int) -> list[int]:
    return [int(entry.split()[0]) for entry in session_members(sid)]


def listeners(pids: list[int]) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket that one of `pids` listens on."""
    inodes: set[str] = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
    found: set[tuple[str, int]] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A" or fields[9] not in inodes:
                continue
            address, port = fields[1].rsplit(":", 1)
            raw = bytes.fromhex(address)
            if len(raw) == 4:
                text = socket.inet_ntop(socket.AF_INET, raw[::-1])
            else:  # four little-endian 32-bit words
                words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                text = socket.inet_ntop(socket.AF_INET6, words)
            found.add((text, int(port, 16)))
    return found


def assert_nothing_left(sid: int, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while (left := session_members(sid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"left behind: {left}"


@contextlib.contextmanager
def held(port: int) -> Iterator[None]:
    """Another process listening on 127.0.0.1:port (if one already does, that counts too)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", (
            "import socket, sys, time\n"
            "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
            f"s.bind(('127.0.0.1', {port})); s.listen(); print('ready', flush=True)\n"
            "time.sleep(600)\n")],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert holder.stdout is not None
        holder.stdout.readline()  # "ready", or EOF when the port was already taken
        yield
    finally:
        holder.kill()
        holder.wait()


def dev_up(state: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "webordinary.devkit.up", "--state", str(state), *args],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)


def test_taken_ports_fail_fast_naming_the_port_and_the_fix(tmp_path: Path) -> None:
    with held(8080), held(8081):
        started = time.monotonic()
        run = dev_up(tmp_path, "--send", "Make the header blue", "--once")
        out, err = run.communicate(timeout=30)
        took = time.monotonic() - started
    assert run.returncode != 0
    assert took < 10, f"took {took:.1f}s"
    assert "port 8080" in err, err
    assert "--port-base" in err
    assert "Traceback" not in err + out
    assert json.loads(out.splitlines()[-1])["ok"] is False, "--once ends with its JSON result"
    assert_nothing_left(run.pid)


def test_a_port_holder_is_named(tmp_path: Path) -> None:
    from webordinary.devkit import ports

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        (problem,) = ports.taken({"ingress": port})
    assert f"port {port} (previews)" in problem
    assert f"pid {os.getpid()}" in problem
    assert f"kill {os.getpid()}" in problem


def test_a_killed_component_stops_dev_up_with_its_name(tmp_path: Path) -> None:
    run = dev_up(tmp_path, "--port-base", "0")
    try:
        assert run.stdout is not None
        deadline = time.monotonic() + 120
        for line in run.stdout:
            if line.startswith("Ctrl-C stops everything"):
                break
            assert time.monotonic() < deadline
        else:
            pytest.fail(f"./dev up ended before it was ready: {run.stderr and run.stderr.read()}")
        bound = listeners([run.pid, *(pid for pid, _ in descendants(run.pid))])
        assert len(bound) >= 6, bound  # API, moto, SMTP, ingress, mailbox, metrics...
        assert {address for address, _ in bound} == {"127.0.0.1"}, bound
        (hermes,) = [int(p.split()[0]) for p in session_members(run.pid)
                     if "-m webordinary.hermes" in p]
        os.kill(hermes, signal.SIGKILL)
        _, err = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
    assert run.returncode != 0
    assert "hermes stopped unexpectedly (killed by SIGKILL)" in err, err
    assert "Last lines of" in err
    assert_nothing_left(run.pid, within=20)
