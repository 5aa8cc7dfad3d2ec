"""The ports `./dev up` offers people, checked before anything starts.

Only the ports a person types (the Kubernetes API for kubectl, Hermes' SMTP listener, the preview
entry) are fixed; every internal one (moto, the Messages API stand-in, metrics, health, the
mailbox) is picked free by the OS. A taken port is named with the process that holds it and a
one-line fix, instead of a traceback half-way through the start.
"""

from __future__ import annotations

import errno
import os
import socket
from dataclasses import dataclass
from pathlib import Path

DEFAULTS = {"kube": 8001, "smtp": 2525, "ingress": 8080}
# With `--port-base N`: the same ports relative to N (N+1, N+25, N+80); 0 picks free ones.
OFFSETS = {"kube": 1, "smtp": 25, "ingress": 80}
PURPOSE = {"kube": "Kubernetes API", "smtp": "Hermes' SMTP listener", "ingress": "previews"}


@dataclass(frozen=True)
class Holder:
    pid: int
    command: str


def plan(base: int | None, overrides: dict[str, int | None]) -> dict[str, int]:
    """The public ports: explicit ones win, then `--port-base`, then the documented defaults."""
    ports: dict[str, int] = {}
    for name, default in DEFAULTS.items():
        chosen = overrides.get(name)
        if chosen is None:
            chosen = default if base is None else (0 if base == 0 else base + OFFSETS[name])
        ports[name] = chosen
    return ports


def bindable(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a listener could bind host:port now (as the servers do, with SO_REUSEADDR)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def listening_inodes(port: int) -> set[str]:
    """Socket inodes listening on `port` (any address), from /proc/net/tcp{,6}."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                inodes.add(inode)
    return inodes


def holder(port: int) -> Holder | None:
    """The process listening on `port`, when this user may see it (Linux /proc)."""
    wanted = {f"socket:[{inode}]" for inode in listening_inodes(port)}
    if not wanted:
        return None
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                if os.readlink(fd) in wanted:
                    raw = (entry / "cmdline").read_bytes().rstrip(b"\0")
                    command = " ".join(raw.replace(b"\0", b" ").decode(errors="replace").split())
                    return Holder(int(entry.name), command[:100] or "?")
        except OSError:
            continue
    return None


def taken(ports: dict[str, int]) -> list[str]:
    """One message per fixed port that is not free, naming its holder and a fix."""
    problems: list[str] = []
    for name, port in ports.items():
        if port == 0 or bindable(port):
            continue
        owner = holder(port)
        who = f"pid {owner.pid} ({owner.command})" if owner else "another process"
        fix = f"stop it (kill {owner.pid})" if owner else f"free it (ss -ltnp 'sport = :{port}')"
        problems.append(
            f"port {port} ({PURPOSE[name]}) is taken by {who}. Fix: {fix}, or run "
            f"`./dev up --port-base 18000` (or --{name}-port N; --port-base 0 picks free ports)"
        )
    return problems
