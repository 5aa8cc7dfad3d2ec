"""Which environments' result queues are polled (awake, just sent a command, within the grace
period after sleep) and which cost nothing (asleep past the grace; first seen asleep: one
drain), with a clock the test moves."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from webordinary.hermes.adapters.aws import QueueMessage
from webordinary.hermes.journal import Journal
from webordinary.hermes.results import ResultPollers

GRACE = 300.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class LongPolls:
    """A stand-in SQS: a receive with a wait blocks until a message is put or it is cancelled."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.waits: list[tuple[str, int]] = []
        self.messages: dict[str, list[QueueMessage]] = {}
        self.arrived = asyncio.Event()
        self.deleted: list[str] = []

    async def receive(self, url: str, max_messages: int = 10, wait_seconds: int = 0,
                      visibility_seconds: int | None = None) -> list[QueueMessage]:
        self.calls[url] += 1
        self.waits.append((url, wait_seconds))
        while wait_seconds and not self.messages.get(url):
            self.arrived.clear()
            await self.arrived.wait()
        batch, self.messages[url] = self.messages.get(url, []), []
        return batch

    async def delete(self, url: str, receipt_handle: str) -> None:
        self.deleted.append(receipt_handle)

    def put(self, url: str, body: str) -> None:
        self.messages.setdefault(url, []).append(
            QueueMessage(body=body, receipt_handle=f"h-{body}", message_id=body))
        self.arrived.set()


def env(name: str, phase: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "status": {"phase": phase, "queues": {
        "input": f"q://{name}/input", "output": f"q://{name}/output", "dlq": f"q://{name}/dlq"}}}


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def pollers(queues: LongPolls, clock: Clock, handled: list[tuple[str, bool, str]]
            ) -> ResultPollers:
    async def handle(message: QueueMessage, from_dlq: bool, environment: str) -> bool:
        handled.append((message.body, from_dlq, environment))
        return True

    return ResultPollers(queues, handle, wait_seconds=20, dlq_interval=60.0, grace=GRACE,
                         clock=clock)


async def test_awake_environments_are_long_polled_and_results_handled_at_once() -> None:
    queues, clock, handled = LongPolls(), Clock(), []
    results = pollers(queues, clock, handled)
    results.observe([env("a", "Ready"), env("b", "Ready")])
    await settle()
    assert sorted(results.polling()) == ["a", "b"]
    assert ("q://a/output", 20) in queues.waits
    queues.put("q://b/output", "r1")
    await settle()
    assert handled == [("r1", False, "b")]
    assert queues.deleted == ["h-r1"]
    await results.close()


async def test_a_sleeping_environment_costs_nothing_after_the_grace_period() -> None:
    queues, clock, handled = LongPolls(), Clock(), []
    results = pollers(queues, clock, handled)
    results.observe([env("a", "Ready")])
    await settle()
    clock.now += 10
    results.observe([env("a", "Sleeping")])  # within the grace: still polled
    await settle()
    assert results.polling() == ["a"]
    queues.put("q://a/output", "written-on-the-way-down")
    await settle()
    assert handled == [("written-on-the-way-down", False, "a")]
    clock.now += GRACE
    results.observe([env("a", "Sleeping")])
    await settle()
    assert results.polling() == []
    before = sum(queues.calls.values())
    for _ in range(60):  # an hour of listings every minute
        clock.now += 60
        results.observe([env("a", "Sleeping")])
        await settle()
    assert sum(queues.calls.values()) == before
    await results.close()


async def test_first_seen_asleep_is_drained_once() -> None:
    queues, clock, handled = LongPolls(), Clock(), []
    results = pollers(queues, clock, handled)
    queues.put("q://z/output", "left-over")
    results.observe([env("z", "Sleeping")])
    await settle()
    assert handled == [("left-over", False, "z")]
    assert all(wait == 0 for _, wait in queues.waits)
    calls = sum(queues.calls.values())
    for _ in range(10):
        clock.now += 60
        results.observe([env("z", "Sleeping")])
        await settle()
    assert sum(queues.calls.values()) == calls
    assert results.polling() == []
    await results.close()


async def test_a_command_wakes_the_polling_of_a_sleeping_environment() -> None:
    queues, clock, handled = LongPolls(), Clock(), []
    results = pollers(queues, clock, handled)
    results.observe([env("s", "Sleeping")])
    await settle()
    results.touch("s", env("s", "Sleeping"))
    await settle()
    assert results.polling() == ["s"]
    queues.put("q://s/output", "r")
    await settle()
    assert handled[-1] == ("r", False, "s")
    await results.close()


async def test_dlqs_are_swept_at_start_and_then_every_interval() -> None:
    queues, clock, handled = LongPolls(), Clock(), []
    results = ResultPollers(queues, _handler(handled), wait_seconds=20, dlq_interval=0.05,
                            grace=GRACE, clock=clock)
    queues.put("q://a/dlq", "early")
    results.observe([env("a", "Ready")])
    await settle()
    assert ("early", True, "a") in handled
    queues.put("q://a/dlq", "later")
    await asyncio.sleep(0.2)
    assert ("later", True, "a") in handled
    results.observe([])  # gone: no more polling
    await settle()
    assert results.polling() == []
    await results.close()


def _handler(handled: list[tuple[str, bool, str]]) -> Any:
    async def handle(message: QueueMessage, from_dlq: bool, environment: str) -> bool:
        handled.append((message.body, from_dlq, environment))
        return True
    return handle


def test_journal_memory_and_file_stay_bounded(tmp_path: Any) -> None:
    path = tmp_path / "journal.jsonl"
    journal = Journal(path, max_threads=1000, max_records=1000)
    for index in range(5000):
        journal.remember_threads({f"env|mid:{index}@x": f"{index:016x}"})
        journal.record_reply(f"result:cmd-{index}")
    journal.prune()
    assert len(journal.threads) <= 1000
    assert len(journal.replies) <= 1000
    assert journal.threads.get("env|mid:4999@x") == f"{4999:016x}"  # the newest stay
    assert journal.threads.get("env|mid:0@x") is None
    lines = len(path.read_text().splitlines())
    assert lines <= 2 * 2000 + 1000 + 1000  # compacted as it grows
    again = Journal(path, max_threads=1000, max_records=1000)
    assert again.replied("result:cmd-4999")
    assert len(again.threads) <= 1000
