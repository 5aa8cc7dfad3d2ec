"""The component processes `./dev up` starts, supervised together.

The operator and Hermes run in one process group of their own (a Ctrl-C reaches only `./dev up`,
which stops them in order); each one is started through a tiny launcher that asks the kernel for
SIGTERM when `./dev up` dies, however it dies, so nothing is left behind. When a component exits
on its own, `casualty()` names it, and `describe()` says why with the end of its log.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

# Runs before the component: PR_SET_PDEATHSIG (1) = SIGTERM, kept across exec; if the parent is
# already gone, stop at once.
LAUNCHER = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)\n"
    "os.getppid() == int(sys.argv[1]) or sys.exit(0)\n"
    "os.execv(sys.executable, [sys.executable, *sys.argv[2:]])\n"
)


def orphan_proof(module: str) -> list[str]:
    """`python -m module`, ended by the kernel when this process ends (Linux)."""
    return [sys.executable, "-c", LAUNCHER, str(os.getpid()), "-m", module]


def describe_exit(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exit code {code}"


def last_lines(path: Path, count: int = 15) -> list[str]:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64 * 1024))
            text = handle.read().decode(errors="replace")
    except OSError:
        return []
    return text.splitlines()[-count:]


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path


@dataclass
class Supervisor:
    """Starts components into one process group and stops them all, in reverse order."""

    logs: Path
    children: list[Child] = field(default_factory=list)
    group: int | None = None

    def spawn(self, name: str, module: str, env: dict[str, str]) -> Child:
        """Start a component as its own process (as in its own pod), logging to a file."""
        self.logs.mkdir(parents=True, exist_ok=True)
        log_path = self.logs / f"{name}.log"
        if log_path.exists():  # this run's log alone; the previous one stays as NAME.log.1
            log_path.replace(log_path.with_suffix(".log.1"))
        with log_path.open("ab") as sink:
            process = subprocess.Popen(
                orphan_proof(module), env={**os.environ, **env}, stdin=subprocess.DEVNULL,
                stdout=sink, stderr=subprocess.STDOUT,
                process_group=0 if self.group is None else self.group,
            )
        if self.group is None:
            self.group = process.pid
        child = Child(name, process, log_path)
        self.children.append(child)
        return child

    def casualty(self) -> Child | None:
        """The first component that has exited (none should while `./dev up` runs)."""
        return next((c for c in self.children if c.process.poll() is not None), None)

    def describe(self, child: Child, lines: int = 15) -> str:
        code = child.process.returncode
        tail = "\n".join(f"    {line}" for line in last_lines(child.log_path, lines))
        return (f"{child.name} stopped unexpectedly ({describe_exit(code)}). "
                f"Last lines of {child.log_path}:\n{tail}")

    def stop_all(self, grace: float = 15.0) -> None:
        """SIGTERM each component (last started first), then SIGKILL what is left of the group."""
        for child in reversed(self.children):
            if child.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for child in reversed(self.children):
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
        if self.group is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.group, signal.SIGKILL)
