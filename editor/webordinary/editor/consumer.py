"""The queue consumer: receive, lease, deduplicate, schedule (a new command interrupts the
running one), run through the dispatcher, answer, acknowledge.

The poller runs all the time (also while a job runs), so a new message interrupts the running
job at once. A message is deleted only after its result is on the output queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from webordinary.contracts.messages import Result, ResultError, ResultStatus
from webordinary.editor import metrics
from webordinary.editor.agent import Ending
from webordinary.editor.handlers import Job, Retry
from webordinary.editor.planner import Adopt, Reject, Replay, Run, plan, rejection
from webordinary.editor.ports import InputPort, JournalPort, ResultPort
from webordinary.editor.results import Facts, assemble
from webordinary.editor.sqs import Received

log = logging.getLogger(__name__)

REMEMBERED = 1000
DISK_FULL_MESSAGE = (
    "the storage of this editing environment is full, so the change could not be saved. "
    "Our team has been alerted; please send your request again later")


def disk_full(exc: BaseException) -> bool:
    """ENOSPC (or EDQUOT) anywhere in the exception or in a git command's message."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return "no space left on device" in str(exc).lower() or (
        exc.__cause__ is not None and disk_full(exc.__cause__))


@dataclass(frozen=True)
class Leases:
    """How the consumer polls and holds messages."""

    poll_wait_seconds: int = 20
    receive_visibility_seconds: int = 5
    visibility_timeout_seconds: int = 120
    retry_backoff_seconds: int = 10


class Consumer:
    """Holds the queue side of the editor; `dispatch` does the work of one job."""

    def __init__(self, inputs: InputPort, results: ResultPort, journal: JournalPort,
                 dispatch: Callable[[Job], Awaitable[Result]], *, leases: Leases,
                 environment: str | None, max_attempts: Callable[[], int]) -> None:
        self.inputs = inputs
        self.results = results
        self.journal = journal
        self.dispatch = dispatch
        self.leases = leases
        self.environment = environment
        self.max_attempts = max_attempts
        self.inbox: asyncio.Queue[Job] = asyncio.Queue()
        self.waiting: list[Job] = []
        self.current: Job | None = None
        self.stopping = asyncio.Event()
        # Answers given by this process: a redelivery is replayed even when the journal
        # could not be written (a full disk must never make the agent run twice).
        self.answered: OrderedDict[str, Result] = OrderedDict()

    def lookup(self, command_id: str) -> Result | None:
        """The answer given to a command: from memory, else from the journal."""
        if command_id in self.answered:
            return self.answered[command_id]
        try:
            return self.journal.get(command_id)
        except OSError as exc:
            log.error("could not read the journal entry of %s: %s", command_id, exc)
            return None

    def remember(self, result: Result) -> None:
        self.answered[result.command_id] = result
        self.answered.move_to_end(result.command_id)
        while len(self.answered) > REMEMBERED:
            self.answered.popitem(last=False)

    def stop(self) -> None:
        """Take no more work; interrupt the running job (it commits and reports)."""
        self.stopping.set()
        if self.current is not None:
            self.current.interrupt(Ending.INTERRUPTED, shutdown=True)

    async def poll(self) -> None:
        """Long-poll continuously; hand new commands over and interrupt the running one."""
        while not self.stopping.is_set():
            if not self.inbox.empty():
                await asyncio.sleep(0.05)
                continue
            try:
                received = await self.inputs.receive(self.leases.poll_wait_seconds,
                                                     self.leases.receive_visibility_seconds)
            except Exception as exc:
                log.warning("receive failed: %s", exc)
                await asyncio.sleep(1)
                continue
            for message in received:
                if self.stopping.is_set():
                    await self.inputs.extend(message.receipt, 0)
                    continue
                try:
                    await self.accept(message)
                except Exception:
                    log.exception("could not handle message %s; it will come back",
                                  message.message_id)

    async def accept(self, message: Received) -> None:
        log.info("received message %s", message.message_id)
        running = self.current.command.command_id if self.current is not None else None
        decision = plan(message.body, message.message_id, self.lookup, running)
        if isinstance(decision, Reject):
            log.warning("rejected message %s: %s", message.message_id, decision.message)
            await self.answer(rejection(decision, self.environment), message,
                              record=False, kind="invalid")
        elif isinstance(decision, Replay):
            log.info("command %s was answered before; replaying its result",
                     decision.result.command_id)
            await self.answer(decision.result, message, record=False, kind=None)
        elif isinstance(decision, Adopt):
            log.warning("running command %s was delivered again", decision.command.command_id)
            await self.inputs.extend(message.receipt, self.leases.visibility_timeout_seconds)
            if self.current is not None:
                self.current.adopt(message)
        elif isinstance(decision, Run):
            await self.inputs.extend(message.receipt, self.leases.visibility_timeout_seconds)
            twin = next((j for j in self.waiting
                         if j.command.command_id == decision.command.command_id), None)
            if twin is not None:
                twin.adopt(message)
                return
            job = Job(decision.command, message)
            self.waiting.append(job)
            await self.inbox.put(job)
            if self.current is not None:
                log.info("new command %s interrupts %s", decision.command.command_id,
                         self.current.command.command_id)
                self.current.interrupt(Ending.INTERRUPTED)

    def held(self) -> list[Received]:
        held = [m for job in self.waiting for m in job.held()]
        if self.current is not None:
            held.extend(self.current.held())
        return held

    async def heartbeat(self) -> None:
        """Keep held messages invisible while they wait or run."""
        visibility = self.leases.visibility_timeout_seconds
        while True:
            await asyncio.sleep(max(1.0, visibility / 3))
            for message in self.held():
                try:
                    await self.inputs.extend(message.receipt, visibility)
                    log.info("extended the lease of message %s by %ss", message.message_id,
                             visibility)
                except Exception as exc:
                    log.warning("could not extend visibility of %s: %s", message.message_id, exc)

    async def process(self) -> None:
        while not self.stopping.is_set():
            job = await self.inbox.get()
            if self.stopping.is_set():
                await self.inbox.put(job)
                return
            self.waiting.remove(job)
            self.current = job
            metrics.BUSY.set(1)
            try:
                await self.execute(job)
            except Exception:
                log.exception("could not answer %s; it will be redelivered",
                              job.command.command_id)
            finally:
                self.current = None
                metrics.BUSY.set(0)

    async def release_waiting(self) -> None:
        """Hand the messages of jobs that never started back to the queue at once."""
        while not self.inbox.empty():
            job = self.inbox.get_nowait()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.inputs.extend(job.message.receipt, 0), 3)

    async def execute(self, job: Job) -> None:
        command = job.command
        answered = self.lookup(command.command_id)
        if answered is not None:
            await self.answer(answered, job.message, record=False, kind=None)
            return
        log.info("running %s %s for thread-%s", command.type.value, command.command_id,
                 command.session_id)
        try:
            result = await self.dispatch(job)
        except Retry as retry:
            metrics.RETRIES.inc()
            log.warning("command %s failed (attempt %d of %d), left for redelivery: %s",
                        command.command_id, job.message.receive_count, self.max_attempts(),
                        retry)
            with contextlib.suppress(Exception):
                await self.inputs.extend(job.message.receipt, self.leases.retry_backoff_seconds)
                for twin in job.twins:
                    await self.inputs.delete(twin.receipt)
            return
        except Exception as exc:
            facts = Facts(command, self.environment, job.message.received_at, job.started_at,
                          tuple(job.notes))
            if disk_full(exc):
                log.error("command %s failed: the volume is full (%s)", command.command_id, exc)
                metrics.DISK_FULL.inc()
                error = ResultError(reason="disk_full", message=DISK_FULL_MESSAGE)
            else:
                log.exception("command %s crashed", command.command_id)
                error = ResultError(reason="editor_error", message=str(exc))
            result = assemble(facts, ResultStatus.FAILED, time.time(),
                              summary=f"The request failed: {error.message}.", error=error)
        await self.answer(result, job.message, record=True, kind=command.type.value)
        for twin in job.twins:
            with contextlib.suppress(Exception):
                await self.inputs.delete(twin.receipt)
        metrics.JOB_SECONDS.labels(command.type.value).observe(time.time() - job.started_at)

    async def answer(self, result: Result, message: Received, *, record: bool,
                     kind: str | None) -> None:
        """Journal, publish, then acknowledge: a crash in between only causes a replay.

        A journal that cannot be written (a full disk) does not hold the answer back: it is
        remembered in memory and sent. Rejections are not journaled: they are deterministic,
        and a command id that came with a broken envelope must stay usable for a corrected
        command.
        """
        if record:
            self.remember(result)
            try:
                self.journal.put(result)
            except OSError as exc:
                metrics.LOCAL_WRITE_ERRORS.labels("journal").inc()
                if disk_full(exc):
                    metrics.DISK_FULL.inc()
                log.error("could not journal the answer to %s (%s); sending it anyway",
                          result.command_id, exc)
        log.info("sending the answer to %s", result.command_id)
        await self.results.send(result)
        await self.inputs.delete(message.receipt)
        if kind is None:
            metrics.REPLAYS.inc()
        else:
            metrics.COMMANDS.labels(kind, result.status.value).inc()
        log.info("answered %s: %s", result.command_id, result.status.value)
