"""What `./dev up` prints for people: one line per email in, command, result and reply.

The components log to files under `.local/logs/`; this reads what they already write (Hermes'
journal, the editors' and components' logs, the local mailbox) and turns the moments a person
follows into single lines. Errors a component logs are shown in full, traceback included.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import TextIO

ANSWERED = re.compile(r"\banswered (\S+): (\w+)")
# "2026-11-28 20:01:02,345 ERROR name: message" (every component's log format)
RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (\w+) ")
PREVIEW = re.compile(r"\bhttps?://\S+/session/\S+")


def preview_link(text: str) -> str | None:
    match = PREVIEW.search(text)
    return match[0].rstrip(".,)>") if match else None


def plain_text(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    return str(body.get_content()) if body is not None else ""


@dataclass
class Tail:
    """New complete lines of a growing file since the last call."""

    path: Path
    offset: int = 0
    pending: str = ""

    def lines(self) -> list[str]:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except OSError:
            return []
        self.offset += len(data)
        text = self.pending + data.decode(errors="replace")
        *complete, self.pending = text.split("\n")
        return complete


@dataclass
class Console:
    """Prints event lines; `poll()` reads the logs, `reply()` is called by the mailbox."""

    logs: Path
    journal: Path
    out: TextIO = field(default_factory=lambda: sys.stdout)
    tails: dict[Path, Tail] = field(default_factory=dict)
    errors: dict[Path, list[str]] = field(default_factory=dict)
    last_error: dict[Path, tuple[str, str]] = field(default_factory=dict)
    writing: threading.Lock = field(default_factory=threading.Lock)

    def line(self, kind: str, text: str) -> None:
        self.write(f"{time.strftime('%H:%M:%S')}  {kind:<9} {text}")

    def write(self, text: str) -> None:
        """Whole lines only: the mailbox calls `reply()` from the SMTP server's own thread, and
        `print` writes the text and its newline separately, so two threads could splice lines."""
        with self.writing:
            self.out.write(text + "\n")
            self.out.flush()

    def start_at_end(self) -> None:
        """Skip what earlier runs left in the journal and the logs."""
        for path in [self.journal, *self.logs.glob("*.log")]:
            tail = self._tail(path)
            tail.lines()

    def _tail(self, path: Path) -> Tail:
        if path not in self.tails:
            self.tails[path] = Tail(path)
        return self.tails[path]

    def poll(self) -> None:
        for line in self._tail(self.journal).lines():
            self._journal_entry(line)
        for path in sorted(self.logs.glob("*.log")):
            if path.name == "devkit.log":
                continue
            for line in self._tail(path).lines():
                self._log_line(path, line)
            self._flush_error(path)

    def _journal_entry(self, line: str) -> None:
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            return
        if entry.get("t") != "command":
            return
        record = entry.get("record", {})
        reply = record.get("reply", {})
        subject = re.sub(r"^(re:\s*)+", "", str(reply.get("subject", "")), flags=re.I)
        self.line("email in", f"from {reply.get('to')}: {subject!r} "
                              f"(thread {record.get('thread_id')})")
        self.line("command", f"{record.get('command_id')} queued for "
                             f"{record.get('environment')}")

    def _log_line(self, path: Path, line: str) -> None:
        record = RECORD.match(line)
        if record is None:
            if path in self.errors and line.strip():
                self.errors[path].append(line)  # the error's traceback
            return
        self._flush_error(path)
        level = record[1]
        if level in {"ERROR", "CRITICAL"}:
            self.errors[path] = [line[record.end():]]
        elif answered := ANSWERED.search(line):
            self.line("result", f"{answered[1]} {answered[2]} ({path.stem})")

    def _flush_error(self, path: Path) -> None:
        """An error in full the first time; the same error again (a crash loop) in one line."""
        lines = self.errors.pop(path, None)
        if not lines:
            return
        text = "\n".join(f"    {line}" for line in lines[1:])
        if self.last_error.get(path) == (lines[0], text):
            self.line("error", f"{path.stem}: {lines[0]} (the same error again)")
            return
        self.last_error[path] = (lines[0], text)
        self.line("error", f"{path.stem}: {lines[0]}")
        if text:
            self.write(text)

    def reply(self, message: EmailMessage, saved: Path) -> None:
        kind = str(message.get("X-Webordinary-Kind", "reply")).lower()
        link = preview_link(plain_text(message))
        text = f"to {message['To']}: {str(message['Subject'])!r} [{kind}]"
        self.line("reply", text + (f" preview {link}" if link else f" ({saved.name})"))

    def sent(self, text: str, message_id: str, to: str) -> None:
        self.line("sent", f"{text!r} to {to} (Message-ID {message_id})")
