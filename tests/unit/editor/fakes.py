"""In-memory fakes at the editor's ports (ports.py): queues, journal, git, agent, builds."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from webordinary.contracts.messages import Push, PushState, Result, Usage
from webordinary.editor.agent import Ending, Outcome
from webordinary.editor.consumer import Consumer, Leases
from webordinary.editor.handlers import Dispatcher, Policy, Ports
from webordinary.editor.sessions import GitError
from webordinary.editor.sqs import Received

_ids = itertools.count(1)


def body(session: str, command_id: str, instruction: str = "Change it",
         kind: str = "edit") -> str:
    return json.dumps({"version": "v1", "sessionId": session, "commandId": command_id,
                       "type": kind, "instruction": instruction,
                       "context": {"branch": f"thread-{session}"}})


def message(raw: str, message_id: str | None = None, count: int = 1) -> Received:
    mid = message_id or f"m-{next(_ids)}"
    return Received(message_id=mid, receipt=f"r-{mid}-{count}", body=raw, receive_count=count,
                    received_at=time.time())


@dataclass
class FakeQueues:
    """Input and output queue: what was sent, deleted and extended."""

    inbox: list[Received] = field(default_factory=list)
    sent: list[Result] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    extended: list[tuple[str, int]] = field(default_factory=list)
    send_failures: int = 0

    async def receive(self, wait_seconds: int, visibility: int) -> list[Received]:
        if self.inbox:
            return [self.inbox.pop(0)]
        await asyncio.sleep(0.01)
        return []

    async def delete(self, receipt: str) -> None:
        self.deleted.append(receipt)

    async def extend(self, receipt: str, seconds: int) -> None:
        self.extended.append((receipt, seconds))

    async def send(self, result: Result) -> None:
        if self.send_failures:
            self.send_failures -= 1
            raise ConnectionError("output queue unreachable")
        self.sent.append(result)


@dataclass
class FakeJournal:
    entries: dict[str, Result] = field(default_factory=dict)
    error: int | None = None

    def get(self, command_id: str) -> Result | None:
        return self.entries.get(command_id)

    def put(self, result: Result) -> None:
        if self.error is not None:
            raise OSError(self.error, "No space left on device" if self.error == errno.ENOSPC
                          else "write failed")
        self.entries[result.command_id] = result


def _snapshot(path: Path) -> dict[str, str]:
    return {str(p.relative_to(path)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


@dataclass
class FakeGit:
    """Worktrees are plain folders; a commit is a snapshot of one; pushes are recorded."""

    root: Path
    remote: bool = True
    commits: dict[str, list[tuple[str, str, dict[str, str]]]] = field(default_factory=dict)
    pushed: list[str] = field(default_factory=list)
    pushes: list[Push] = field(default_factory=list)
    commit_error: OSError | GitError | None = None

    async def worktree(self, thread_id: str) -> Path:
        path = self.root / f"thread-{thread_id}"
        if not path.exists():
            path.mkdir(parents=True)
            self.commits[path.name] = [("base", "base", {})]
        return path

    async def head(self, worktree: Path) -> str:
        return self.commits[worktree.name][-1][0]

    async def commit(self, worktree: Path, message: str) -> str | None:
        if self.commit_error is not None:
            raise self.commit_error
        now = _snapshot(worktree)
        if now == self.commits[worktree.name][-1][2]:
            return None
        sha = hashlib.sha1(f"{worktree.name}{len(self.commits[worktree.name])}".encode())
        self.commits[worktree.name].append((sha.hexdigest(), message, now))
        return sha.hexdigest()

    async def changed_files(self, worktree: Path, since: str) -> list[str]:
        history = self.commits[worktree.name]
        shas = [c[0] for c in history]
        index = shas.index(since.removesuffix("~1")) - since.endswith("~1")
        old = history[index][2]
        new = history[-1][2]
        return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))

    async def has_remote(self) -> bool:
        return self.remote

    async def publish(self, thread_id: str, *, attempts: int = 3,
                      backoff: float = 1.0) -> Push:
        report = self.pushes.pop(0) if self.pushes else Push(
            state=PushState.PUSHED, branch=f"thread-{thread_id}", attempts=1)
        if report.state is not PushState.FAILED:
            self.pushed.append(thread_id)
        return report

    async def completed_commit(self, worktree: Path, command_id: str) -> tuple[str, str] | None:
        for sha, text, _ in reversed(self.commits[worktree.name]):
            if f"Command-Id: {command_id}\n" in text and not text.startswith("WIP ("):
                return sha, text
        return None

    def messages(self, thread_id: str) -> list[str]:
        return [c[1] for c in self.commits[f"thread-{thread_id}"][1:]]


@dataclass
class Turn:
    """What the fake agent does for one prompt: write files, then end (or wait to be stopped)."""

    writes: dict[str, str] = field(default_factory=dict)
    ending: Ending = Ending.COMPLETED
    summary: str = "Done."
    said: str = ""
    stall: bool = False
    transient: bool = False
    usage: Usage = field(default_factory=lambda: Usage(input_tokens=100, output_tokens=20,
                                                       cost_usd=0.01))


@dataclass
class FakeAgent:
    script: list[Turn]
    worktree: Path | None = None
    prompts: list[str] = field(default_factory=list)
    started: asyncio.Event = field(default_factory=asyncio.Event)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _reason: Ending | None = None

    async def run(self, prompt: str, limit: float) -> Outcome:
        self.prompts.append(prompt)
        self._stop = asyncio.Event()
        self._reason = None
        turn = self.script.pop(0)
        assert self.worktree is not None
        for name, text in turn.writes.items():
            (self.worktree / name).parent.mkdir(parents=True, exist_ok=True)
            (self.worktree / name).write_text(text)
        self.started.set()
        if turn.stall:
            await self._stop.wait()
            return Outcome(self._reason or Ending.INTERRUPTED, summary=turn.said,
                           usage=turn.usage)
        if turn.ending is Ending.FAILED:
            return Outcome(Ending.FAILED, usage=turn.usage, error="Claude Code failed (HTTP 500)",
                           transient=turn.transient)
        return Outcome(turn.ending, summary=turn.summary, usage=turn.usage)

    def interrupt(self, reason: Ending = Ending.INTERRUPTED) -> None:
        self._reason = self._reason or reason
        self._stop.set()


@dataclass
class FakeAgents:
    agent: FakeAgent

    async def get(self, thread_id: str, worktree: Path) -> FakeAgent:
        self.agent.worktree = worktree
        return self.agent


@dataclass
class FakePreviews:
    shown: list[str] = field(default_factory=list)

    def show(self, thread_id: str, worktree: Path) -> None:
        self.shown.append(thread_id)


@dataclass
class FakeAttachments:
    blobs: dict[str, bytes] = field(default_factory=dict)

    async def fetch(self, uri: str, max_bytes: int) -> bytes:
        return self.blobs[uri]


@dataclass
class FakeBuilds:
    outcome: tuple[int, str] | None = (0, "built")

    async def dependencies(self) -> None:
        return None

    async def build(self, worktree: Path, stop: asyncio.Event,
                    limit: float) -> tuple[int, str] | None:
        return self.outcome


@dataclass
class FakeLedger:
    month: float = 0.0
    runs: list[Usage] = field(default_factory=list)

    def spent(self) -> float:
        return self.month

    def record(self, usage: Usage) -> None:
        self.runs.append(usage)
        self.month += usage.cost_usd or 0.0


@dataclass
class Rig:
    """A consumer over fakes, running in the test's event loop."""

    tmp: Path
    turns: list[Turn] = field(default_factory=list)
    policy: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.queues = FakeQueues()
        self.journal = FakeJournal()
        self.git = FakeGit(self.tmp / "sessions")
        self.agent = FakeAgent(self.turns)
        self.previews = FakePreviews()
        self.builds = FakeBuilds()
        self.ledger = FakeLedger()
        self.ports = Ports(git=self.git, agents=FakeAgents(self.agent), previews=self.previews,
                           attachments=FakeAttachments(), builds=self.builds,
                           ledger=self.ledger)
        policy = Policy(environment="acme-site-ann", max_attempts=lambda: 3, **self.policy)
        self.consumer = Consumer(
            self.queues, self.queues, self.journal, Dispatcher(self.ports, policy),
            leases=Leases(poll_wait_seconds=0, retry_backoff_seconds=7),
            environment="acme-site-ann", max_attempts=lambda: 3)
        self.tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Rig:
        self.tasks = [asyncio.create_task(self.consumer.poll()),
                      asyncio.create_task(self.consumer.process())]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.consumer.stop()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    def send(self, raw: str, message_id: str | None = None, count: int = 1) -> Received:
        received = message(raw, message_id, count)
        self.queues.inbox.append(received)
        return received

    async def until(self, check: Callable[[], bool], within: float = 5.0) -> None:
        deadline = time.monotonic() + within
        while not check():
            assert time.monotonic() < deadline, "condition not met in time"
            await asyncio.sleep(0.005)

    async def results(self, count: int) -> list[Result]:
        await self.until(lambda: len(self.queues.sent) >= count)
        return list(self.queues.sent)
