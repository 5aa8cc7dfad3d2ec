"""Fault injection: commands while the editor process is SIGKILLed at chosen points and
restarted. Shared by the CI test (small) and `./dev bench editor_faults` (200 commands).

Each lane is one environment (its own queues, remote and volume) working through its
commands one at a time, as a customer would; lanes run side by side so redelivery waits
overlap. The kill point is found by watching the editor's log for the step it starts
(receive, agent run, commit, push, result send); the agent run is cut at a random moment.
The Messages API stand-in runs its stateless demo script (read, edit, summary).
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.integration.editor.harness import Editor, Rig, command, git
from webordinary.devkit.aws import MotoServer
from webordinary.devkit.messages_api import MessagesAPI, last_user_blocks

PHASES = ("receive", "agent", "commit", "push", "send")
MARKERS = {
    "receive": "received message",
    "agent": "running edit",
    "commit": "committing the work of",
    "push": "pushing thread-",
    "send": "sending the answer to",
}
AT_RISK = ("agent", "commit")  # a kill here may rightly need the agent to run again
INDEX = "src/pages/index.astro"


@dataclass
class Kill:
    command_id: str
    phase: str
    seen: str  # the last step marker logged before the kill


@dataclass
class Lane:
    """One environment's editor, its commands and what happened to them."""

    rig: Rig
    name: str
    count: int
    rng: random.Random
    share: float
    phases: list[str]
    kills: list[Kill] = field(default_factory=list)
    missed: list[tuple[str, str]] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)
    instructions: dict[str, str] = field(default_factory=dict)
    error: BaseException | None = None

    def plan(self, index: int) -> str | None:
        """The step to kill this command at, if any (every planned step gets its turn)."""
        left = self.count - index
        if self.phases and (self.rng.random() < self.share or left <= len(self.phases)):
            return self.phases.pop(0)
        return None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:
            self.error = exc

    def _run(self) -> None:
        editor = self.rig.start_editor()
        for index in range(self.count):
            command_id = f"{self.name}-{index}"
            instruction = f"Fault page {self.name} {index}"
            self.instructions[command_id] = instruction
            phase = self.plan(index)
            mark = len(editor.log())
            self.rig.send(command(self.name, command_id, instruction))
            if phase is not None:
                seen = self._kill_at(editor, mark, phase, command_id)
                if seen is not None:
                    self.kills.append(Kill(command_id, phase, seen))
                    editor = self.rig.start_editor()
            self._await_result(command_id)
        editor.terminate()

    def _kill_at(self, editor: Editor, mark: int, phase: str, command_id: str) -> str | None:
        """Kill when `phase` starts (or at a random moment of the agent run)."""
        deadline = time.monotonic() + 60
        marker = MARKERS[phase]
        while time.monotonic() < deadline:
            tail = editor.log()[mark:]
            if marker in tail:
                if phase == "agent":
                    time.sleep(self.rng.uniform(0.05, 1.5))
                    tail = editor.log()[mark:]
                seen = max(MARKERS, key=lambda p: tail.rfind(MARKERS[p]))
                editor.kill()
                return seen
            if f"answered {command_id}" in tail:
                self.missed.append((command_id, phase))
                return None
            time.sleep(0.003)
        raise AssertionError(f"{command_id}: {marker!r} never logged:\n{editor.log()[-3000:]}")

    def _await_result(self, command_id: str, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(r["commandId"] == command_id for r in self.results):
            if time.monotonic() > deadline:
                logs = "\n".join(e.log()[-2000:] for e in self.rig.editors[-2:])
                raise AssertionError(f"no result for {command_id}:\n{logs}")
            self.results.extend(self.rig.drain_results(wait=1))

    def settle(self) -> None:
        """Collect late duplicates (a result sent, then the kill before the delete)."""
        self.results.extend(self.rig.drain_results(wait=1))


@dataclass
class Report:
    commands: int = 0
    kills: Counter[str] = field(default_factory=Counter)
    missed: int = 0
    deliveries: int = 0
    distinct: int = 0
    without_result: int = 0
    conflicting_results: int = 0
    completed: int = 0
    in_remote: int = 0
    lost: list[str] = field(default_factory=list)
    runs: int = 0
    reruns: int = 0
    over_needed: list[str] = field(default_factory=list)
    dlq: int = 0
    seconds: float = 0.0

    def lines(self) -> list[str]:
        kills = ", ".join(f"{p} {self.kills[p]}" for p in PHASES)
        return [
            f"commands sent                         {self.commands}",
            f"editor kills (by step)                {sum(self.kills.values())} ({kills})",
            f"planned kills the command outran      {self.missed}",
            f"results delivered                     {self.deliveries} "
            f"({self.deliveries - self.distinct} identical redeliveries)",
            f"commands with exactly one result      {self.distinct - self.conflicting_results}"
            f" of {self.commands} (none: {self.without_result}, "
            f"differing: {self.conflicting_results})",
            f"completed edits                       {self.completed}",
            f"completed edits in the remote branch  {self.in_remote} (lost: {len(self.lost)})",
            f"agent runs                            {self.runs} ({self.reruns} reruns after "
            f"a kill; more than needed: {len(self.over_needed)})",
            f"dead-lettered commands                {self.dlq}",
            f"wall time                             {self.seconds:.0f} s",
        ]

    @property
    def ok(self) -> bool:
        return (self.without_result == 0 and self.conflicting_results == 0
                and not self.lost and not self.over_needed and self.dlq == 0
                and self.completed == self.commands)


def starts_of_runs(api: MessagesAPI) -> Counter[str]:
    """Agent runs per instruction: requests whose newest user message carries the prompt."""
    runs: Counter[str] = Counter()
    for request in api.main_requests():
        for block in last_user_blocks(request.body):
            if block.get("type") == "text":
                value = str(block.get("text", "")).strip()
                if value.startswith("Fault page "):
                    runs[value] += 1
    return runs


def run_faults(base: Path, moto: MotoServer, api: MessagesAPI, *, lanes: int, per_lane: int,
               share: float, seed: int) -> Report:
    """Run the lanes, then check every command against the queues, the remote and the API."""
    api.demo = True
    began = time.monotonic()
    rng = random.Random(seed)
    made: list[Lane] = []
    for number in range(lanes):
        rig = Rig(base=base / f"lane-{number}", moto=moto, api=api, max_receive_count=3)
        rig.base.mkdir(parents=True, exist_ok=True)
        rig.extra_env.update({
            "WEBORDINARY_EDITOR_POLL_WAIT_SECONDS": "1",
            "WEBORDINARY_EDITOR_RECEIVE_VISIBILITY_SECONDS": "2",
            "WEBORDINARY_EDITOR_VISIBILITY_TIMEOUT_SECONDS": "10",
            "WEBORDINARY_EDITOR_PUSH_BACKOFF_SECONDS": "0.2",
        })
        # Every step gets killed in turn; which command and when within the agent run vary.
        kills = max(1, min(per_lane, round(per_lane * share)))
        phases = [PHASES[(number + lanes * k) % len(PHASES)] for k in range(kills)]
        made.append(Lane(rig, f"l{number}", per_lane, random.Random(rng.random()), share,
                         phases))
    threads = [threading.Thread(target=lane.run, name=lane.name) for lane in made]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for lane in made:
            if lane.error is not None:
                raise lane.error
            lane.settle()
        return _check(made, api, time.monotonic() - began)
    finally:
        for lane in made:
            lane.rig.close()


def _check(lanes: list[Lane], api: MessagesAPI, seconds: float) -> Report:
    report = Report(seconds=seconds)
    runs = starts_of_runs(api)
    for lane in lanes:
        rig = lane.rig
        report.commands += len(lane.instructions)
        report.kills.update(k.phase for k in lane.kills)
        report.missed += len(lane.missed)
        report.deliveries += len(lane.results)
        report.dlq += rig.queue_depth(rig.dlq_url)
        remote_index = git("show", f"thread-{lane.name}:{INDEX}", cwd=rig.remote)
        at_risk = Counter(k.command_id for k in lane.kills if k.seen in AT_RISK)
        for command_id, instruction in lane.instructions.items():
            answers = [r for r in lane.results if r["commandId"] == command_id]
            unique = {json.dumps(a, sort_keys=True) for a in answers}
            if not answers:
                report.without_result += 1
                continue
            report.distinct += 1
            report.conflicting_results += len(unique) > 1
            if answers[0]["status"] == "completed":
                report.completed += 1
                if f"<p>{instruction}</p>" in remote_index:
                    report.in_remote += 1
                else:
                    report.lost.append(command_id)
            count = runs[instruction]
            report.runs += count
            report.reruns += max(0, count - 1)
            if count > 1 + at_risk[command_id]:
                report.over_needed.append(f"{command_id}: {count} runs")
    return report
