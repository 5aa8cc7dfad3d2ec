"""The command journal on the volume: commandId -> final Result, so redeliveries are not rerun."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from pydantic import ValidationError

from webordinary.contracts.messages import Result


class Journal:
    """One JSON file per answered command, written atomically (tmp file + rename + fsync)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def path(self, command_id: str) -> Path:
        # Hashed: command ids are wire input and must never shape a path.
        digest = hashlib.sha256(command_id.encode("utf-8")).hexdigest()[:40]
        return self.directory / f"{digest}.json"

    def get(self, command_id: str) -> Result | None:
        """The recorded answer, or None (also for an unreadable entry: then the command reruns)."""
        try:
            raw = self.path(command_id).read_text(encoding="utf-8")
            result = Result.model_validate_json(raw)
        except (FileNotFoundError, ValidationError, UnicodeDecodeError):
            return None
        return result if result.command_id == command_id else None

    def put(self, result: Result) -> None:
        target = self.path(result.command_id)
        payload = result.model_dump_json(by_alias=True, exclude_none=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=self.directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
