"""What Hermes has done: commands sent, replies sent, threads known (idempotency memory).

In memory, optionally mirrored to an append-only JSON-lines file (replayed at start) so a
restart does not resend commands or repeat replies. Every record is one line with its time; a
torn last line (crash mid-write) is skipped on load. Memory and file are bounded: entries older
than the retention are forgotten, each map holds at most its maximum (oldest first out), and
the file is rewritten from what is remembered once it has grown to twice that.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from webordinary.hermes.decisions import ReplyContext

log = logging.getLogger(__name__)


class CommandRecord(BaseModel):
    """A command Hermes queued, with what it needs to answer the user later."""

    model_config = ConfigDict(frozen=True)

    command_id: str
    thread_id: str
    environment: str
    reply: ReplyContext
    received_at: datetime | None = None
    queued_at: datetime


class Aging(Mapping[str, str]):
    """A str -> str map that remembers when each key was written; oldest first out."""

    def __init__(self) -> None:
        self._items: dict[str, tuple[str, float]] = {}

    def __getitem__(self, key: str) -> str:
        return self._items[key][0]

    def get(self, key: str, default: Any = None) -> Any:  # hot path (thread lookups)
        found = self._items.get(key)
        return default if found is None else found[0]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def put(self, key: str, value: str, stamp: float) -> None:
        self._items.pop(key, None)  # re-insert: the newest write is at the end
        self._items[key] = (value, stamp)

    def prune(self, horizon: float, limit: int) -> int:
        """Forget entries written before `horizon`, then the oldest beyond `limit`."""
        dropped = 0
        for key, (_, stamp) in list(self._items.items()):
            if stamp >= horizon and len(self._items) <= limit:
                break
            del self._items[key]
            dropped += 1
        return dropped

    def stamped(self) -> Iterator[tuple[str, str, float]]:
        for key, (value, stamp) in self._items.items():
            yield key, value, stamp


class Journal:
    """Idempotency state keyed by commandId, plus the thread registry (see threads.py)."""

    def __init__(
        self, path: Path | None = None, retention: timedelta = timedelta(days=30),
        now: datetime | None = None, max_threads: int = 500_000, max_records: int = 200_000,
    ) -> None:
        self.path = path
        self.retention = retention
        self.max_threads = max_threads
        self.max_records = max_records
        self.threads = Aging()
        self.commands: dict[str, tuple[CommandRecord, float]] = {}
        self.replies = Aging()
        self._lines = 0
        self._writes = 0
        if path is not None and path.exists():
            self._load(path, (now or datetime.now(UTC)) - retention)

    @staticmethod
    def _now() -> float:
        return datetime.now(UTC).timestamp()

    def _load(self, path: Path, horizon: datetime) -> None:
        kept = dropped = 0
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            try:
                record = json.loads(line)
                at = datetime.fromisoformat(record["at"]) if "at" in record else None
                if at is not None and at < horizon:
                    dropped += 1
                    continue
                self._apply(record, (at or datetime.now(UTC)).timestamp())
                kept += 1
            except (json.JSONDecodeError, ValidationError, KeyError, TypeError,
                    ValueError) as exc:
                dropped += 1
                log.warning("journal %s line %d skipped: %s", path, number, exc)
        self._lines = kept
        self.prune()
        if dropped or self._lines > self._live() * 2:
            self.compact()
            log.info("journal %s compacted: %d records kept, %d dropped", path, self._lines,
                     dropped)

    def _apply(self, record: dict[str, Any], stamp: float) -> None:
        kind = record["t"]
        if kind == "thread":
            for key, value in record["keys"].items():
                self.threads.put(str(key), str(value), stamp)
        elif kind == "command":
            entry = CommandRecord.model_validate(record["record"])
            self.commands.pop(entry.command_id, None)
            self.commands[entry.command_id] = (entry, stamp)
        elif kind == "reply":
            self.replies.put(str(record["key"]), "", stamp)

    def _write(self, record: dict[str, Any]) -> None:
        self._writes += 1
        if self._writes % 1000 == 0:
            self.prune()
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        record["at"] = datetime.now(UTC).isoformat()
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._lines += 1
        if self._lines > 2 * self._live() + 1000:
            self.compact()

    def _live(self) -> int:
        return len(self.threads) + len(self.commands) + len(self.replies)

    def prune(self) -> int:
        """Forget what is older than the retention or beyond the bounds (oldest first)."""
        horizon = self._now() - self.retention.total_seconds()
        dropped = self.threads.prune(horizon, self.max_threads)
        dropped += self.replies.prune(horizon, self.max_records)
        for key, (_, stamp) in list(self.commands.items()):
            if stamp >= horizon and len(self.commands) <= self.max_records:
                break
            del self.commands[key]
            dropped += 1
        return dropped

    def compact(self) -> None:
        """Rewrite the file with exactly what is remembered (atomic replace)."""
        if self.path is None:
            return
        lines: list[str] = []

        def at(stamp: float) -> str:
            return datetime.fromtimestamp(stamp, UTC).isoformat()

        for key, value, stamp in self.threads.stamped():
            lines.append(json.dumps({"t": "thread", "keys": {key: value}, "at": at(stamp)},
                                    separators=(",", ":")))
        for entry, stamp in self.commands.values():
            lines.append(json.dumps({"t": "command", "record": entry.model_dump(mode="json"),
                                     "at": at(stamp)}, separators=(",", ":")))
        for key, _, stamp in self.replies.stamped():
            lines.append(json.dumps({"t": "reply", "key": key, "at": at(stamp)},
                                    separators=(",", ":")))
        temporary = self.path.with_suffix(self.path.suffix + ".tmp")
        temporary.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        os.replace(temporary, self.path)
        self._lines = len(lines)

    def remember_threads(self, keys: dict[str, str]) -> None:
        fresh = {k: v for k, v in keys.items() if self.threads.get(k) != v}
        if fresh:
            now = self._now()
            for key, value in fresh.items():
                self.threads.put(key, value, now)
            self._write({"t": "thread", "keys": fresh})

    def command(self, command_id: str) -> CommandRecord | None:
        found = self.commands.get(command_id)
        return None if found is None else found[0]

    def record_command(self, record: CommandRecord) -> None:
        self.commands.pop(record.command_id, None)
        self.commands[record.command_id] = (record, self._now())
        self._write({"t": "command", "record": record.model_dump(mode="json")})

    def replied(self, key: str) -> bool:
        """Whether the reply `key` (e.g. `result:<commandId>`, `ack:<commandId>`) went out."""
        return key in self.replies

    def record_reply(self, key: str) -> None:
        if key not in self.replies:
            self.replies.put(key, "", self._now())
            self._write({"t": "reply", "key": key})
