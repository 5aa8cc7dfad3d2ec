"""Mail parsing in worker processes, each under a time and a memory limit.

Parsing is the one piece of work whose cost a stranger chooses (MIME trees, encodings, HTML,
quoted history). It runs in a small pool of processes, so the event loop never waits on it:
a worker that takes longer than the timeout is killed and replaced, and each worker's address
space is capped (RLIMIT_AS), so a mail that needs too much memory fails alone with MemoryError
instead of taking the pod down. The worker also reports what each mail cost (CPU seconds and
peak resident memory), which the benchmark prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import pickle
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from webordinary.hermes.decisions import instruction_of
from webordinary.hermes.mail import MailError, ParsedMail, parse_mail

log = logging.getLogger(__name__)

_PROC_STATUS = "/proc/self/status"
START_TIMEOUT = 60.0


@dataclass(frozen=True)
class ParseCost:
    cpu_seconds: float
    peak_bytes: int
    """Peak resident memory above what the worker held before this mail."""


class ParseFailure(Exception):
    """The mail could not be parsed: `cause` is unreadable, timeout, memory or crash."""

    def __init__(self, cause: str, detail: str, cost: ParseCost | None = None) -> None:
        super().__init__(f"{cause}: {detail}")
        self.cause = cause
        self.detail = detail
        self.cost = cost


MAX_LINES = 250_000
"""A mail with more lines is not parsed in full (a 10 MB mail of base64 has ~140,000)."""


def too_big(raw: bytes, max_bytes: int) -> bool:
    """Too big to take in, in bytes or in lines (the stdlib parser's memory is per line):
    such a mail is read for its headers alone, enough to answer "too large"."""
    return len(raw) > max_bytes or raw.count(b"\n") > MAX_LINES


def digest(raw: bytes, headers_only: bool = False) -> ParsedMail:
    """Everything CPU-heavy about a mail: the parse and the new words it says."""
    mail = parse_mail(raw, headers_only)
    if headers_only:
        return mail
    return mail.model_copy(update={"instruction": instruction_of(mail)})


def _status_kib(field: str) -> int:
    try:
        with open(_PROC_STATUS, encoding="ascii") as handle:
            for line in handle:
                if line.startswith(field):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _reset_peak() -> None:
    """Reset VmHWM to the current RSS, so the next reading is this mail's peak."""
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w", encoding="ascii") as f:
        f.write("5")


def _limit_memory(extra_bytes: int) -> None:
    if extra_bytes <= 0:
        return
    try:
        import resource

        base = _status_kib("VmSize:") * 1024
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = base + extra_bytes
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, ValueError, OSError) as exc:  # not Linux: the timeout still holds
        log.warning("parse worker memory limit not set: %s", exc)


def _serve(conn: Connection, memory_bytes: int) -> None:
    """Worker main loop: request = b'H' or b'F', then the raw mail; reply = pickled outcome
    and cost."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when workers stop
    _limit_memory(memory_bytes)
    digest(b"Subject: warm-up\r\n\r\nhello")  # first-use costs before the first mail
    conn.send_bytes(b"ready")
    while True:
        try:  # two messages: the mode, then the mail (slicing one would copy the mail)
            headers_only = conn.recv_bytes() == b"H"
            raw = conn.recv_bytes()
        except (EOFError, OSError):
            return
        _reset_peak()
        before = _status_kib("VmRSS:")
        began = time.process_time()
        outcome: tuple[str, Any]
        try:
            outcome = ("ok", digest(raw, headers_only))
        except MailError as exc:
            outcome = ("unreadable", str(exc)[:500])
        except MemoryError:
            outcome = ("memory", "the mail needs more memory than a parse may use")
        except RecursionError:
            outcome = ("crash", "the mail is nested too deeply")
        except Exception as exc:  # a parser bug must not kill the worker silently
            outcome = ("crash", f"{type(exc).__name__}: {str(exc)[:300]}")
        del raw
        cost = (time.process_time() - began, max(0, _status_kib("VmHWM:") - before) * 1024)
        try:
            payload = pickle.dumps((outcome, cost), protocol=pickle.HIGHEST_PROTOCOL)
        except MemoryError:
            outcome = ("memory", "the parsed mail is too large to hand back")
            payload = pickle.dumps((outcome, cost))
        try:
            conn.send_bytes(payload)
        except (OSError, ValueError):
            return
        if outcome[0] == "memory":
            return  # after a MemoryError a fresh worker is the safe one


class _Slot:
    """One worker process and its pipe; used by one caller at a time."""

    def __init__(self, context: Any, memory_bytes: int) -> None:
        self.context = context
        self.memory_bytes = memory_bytes
        self.process: Any = None
        self.conn: Connection | None = None
        self.lock = threading.Lock()

    def _spawn(self) -> None:
        parent, child = self.context.Pipe(duplex=True)
        process = self.context.Process(
            target=_serve, args=(child, self.memory_bytes), daemon=True,
            name="hermes-parse",
        )
        process.start()
        child.close()
        self.process, self.conn = process, parent
        # A new worker's start-up is not the next mail's parse time: wait for it apart.
        if not parent.poll(START_TIMEOUT) or parent.recv_bytes() != b"ready":
            raise OSError("the parse worker did not start")

    def kill(self) -> None:
        process, conn = self.process, self.conn
        self.process = self.conn = None
        if conn is not None:
            conn.close()
        if process is not None:
            with contextlib.suppress(Exception):
                process.kill()
                process.join(5)
                process.close()

    def call(self, mode: bytes, raw: bytes, timeout: float
             ) -> tuple[tuple[str, Any], tuple[float, int]]:
        with self.lock:
            if self.process is None or not self.process.is_alive():
                self.kill()
                try:
                    self._spawn()
                except (OSError, EOFError) as exc:
                    self.kill()
                    return ("crash", f"no parse worker: {exc}"), (0.0, 0)
            conn = self.conn
            assert conn is not None
            began = time.monotonic()
            try:
                conn.send_bytes(mode)
                conn.send_bytes(raw)
                if not conn.poll(max(0.0, timeout - (time.monotonic() - began))):
                    self.kill()
                    return ("timeout", f"parsing took longer than {timeout:g} s"), (timeout, 0)
                data = conn.recv_bytes()
            except (EOFError, OSError):
                self.kill()
                return ("crash", "the parse worker died"), (0.0, 0)
            outcome, cost = pickle.loads(data)
            if outcome[0] == "memory":
                self.kill()
            return outcome, cost


class ParserPool:
    """A few parse worker processes behind an async `parse()`."""

    def __init__(self, workers: int = 2, timeout: float = 5.0, memory_mib: int = 128) -> None:
        self.timeout = timeout
        self.memory_bytes = memory_mib * 1024 * 1024
        context = multiprocessing.get_context("forkserver")
        # '__main__' too: the fork server imports the main module once, so a new worker does
        # not import it again (that would cost seconds of a parse's time limit).
        context.set_forkserver_preload(["__main__", __name__])
        self._slots = [_Slot(context, self.memory_bytes) for _ in range(max(1, workers))]
        self._executor = ThreadPoolExecutor(max_workers=len(self._slots),
                                            thread_name_prefix="hermes-parse")
        self._idle: asyncio.Queue[_Slot] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.last_cost: ParseCost | None = None

    @property
    def size(self) -> int:
        return len(self._slots)

    async def parse(self, raw: bytes, headers_only: bool = False) -> tuple[ParsedMail, ParseCost]:
        """The digested mail and what it cost; ParseFailure when it cannot be had in limits."""
        loop = asyncio.get_running_loop()
        if self._idle is None or self._loop is not loop:
            self._loop, self._idle = loop, asyncio.Queue()
            for slot in self._slots:
                self._idle.put_nowait(slot)
        slot = await self._idle.get()
        try:
            (kind, value), (cpu, peak) = await loop.run_in_executor(
                self._executor, slot.call, b"H" if headers_only else b"F", raw, self.timeout
            )
        finally:
            self._idle.put_nowait(slot)
        cost = ParseCost(cpu_seconds=float(cpu), peak_bytes=int(peak))
        self.last_cost = cost
        if kind != "ok":
            raise ParseFailure(kind, str(value), cost)
        assert isinstance(value, ParsedMail)
        return value, cost

    async def warm(self) -> None:
        """Start every worker now (the first start of the fork server takes a moment)."""
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(self._executor, s.call, b"H", b"\r\n", 30.0)
                               for s in self._slots), return_exceptions=True)

    def close(self) -> None:
        for slot in self._slots:
            slot.kill()
        self._executor.shutdown(wait=False, cancel_futures=True)


def worker_pids(pool: ParserPool) -> list[int]:
    """Process ids of the running workers (tests and the benchmark look at them)."""
    return [s.process.pid for s in pool._slots if s.process is not None and s.process.pid]


__all__ = ["ParseCost", "ParseFailure", "ParserPool", "digest", "too_big", "worker_pids"]
