"""What Hermes has done: commands sent, replies sent, threads known (idempotency memory).

In memory, optionally mirrored to an append-only JSON-lines file (replayed at start) so a
restart does not resend commands or repeat replies. Every record is one line with its time; a
torn last line (crash mid-write) is skipped on load. Records older than the retention are
dropped at start and the file is rewritten without them, so it does not grow forever.
"""

from __future__ import annotations

import json
import logging
import os
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


class Journal:
    """Idempotency state keyed by commandId, plus the thread registry (see threads.py)."""

    def __init__(
        self, path: Path | None = None, retention: timedelta = timedelta(days=30),
        now: datetime | None = None,
    ) -> None:
        self.path = path
        self.threads: dict[str, str] = {}
        self.commands: dict[str, CommandRecord] = {}
        self.replies: set[str] = set()
        if path is not None and path.exists():
            self._load(path, (now or datetime.now(UTC)) - retention)

    def _load(self, path: Path, horizon: datetime) -> None:
        kept: list[str] = []
        dropped = 0
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            try:
                record = json.loads(line)
                if "at" in record and datetime.fromisoformat(record["at"]) < horizon:
                    dropped += 1
                    continue
                self._apply(record)
                kept.append(line)
            except (json.JSONDecodeError, ValidationError, KeyError, TypeError,
                    ValueError) as exc:
                dropped += 1
                log.warning("journal %s line %d skipped: %s", path, number, exc)
        if dropped:
            temporary = path.with_suffix(path.suffix + ".tmp")
            temporary.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")
            os.replace(temporary, path)
            log.info("journal %s compacted: %d records kept, %d dropped", path, len(kept),
                     dropped)

    def _apply(self, record: dict[str, Any]) -> None:
        kind = record["t"]
        if kind == "thread":
            self.threads.update(record["keys"])
        elif kind == "command":
            entry = CommandRecord.model_validate(record["record"])
            self.commands[entry.command_id] = entry
        elif kind == "reply":
            self.replies.add(record["key"])

    def _write(self, record: dict[str, Any]) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        record["at"] = datetime.now(UTC).isoformat()
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, separators=(",", ":")) + "\n")

    def remember_threads(self, keys: dict[str, str]) -> None:
        fresh = {k: v for k, v in keys.items() if self.threads.get(k) != v}
        if fresh:
            self.threads.update(fresh)
            self._write({"t": "thread", "keys": fresh})

    def command(self, command_id: str) -> CommandRecord | None:
        return self.commands.get(command_id)

    def record_command(self, record: CommandRecord) -> None:
        self.commands[record.command_id] = record
        self._write({"t": "command", "record": record.model_dump(mode="json")})

    def replied(self, key: str) -> bool:
        """Whether the reply `key` (e.g. `result:<commandId>`, `ack:<commandId>`) went out."""
        return key in self.replies

    def record_reply(self, key: str) -> None:
        if key not in self.replies:
            self.replies.add(key)
            self._write({"t": "reply", "key": key})
