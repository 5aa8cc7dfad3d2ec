"""What `./dev up` prints: one line per moment a person follows, errors in full."""

from __future__ import annotations

import io
import json
import threading
import time
from email.message import EmailMessage
from pathlib import Path

from webordinary.devkit import ports
from webordinary.devkit.console import Console


def console(tmp_path: Path) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    (tmp_path / "logs").mkdir()
    return Console(tmp_path / "logs", tmp_path / "journal.jsonl", out=out), out


def test_journal_and_logs_become_event_lines(tmp_path: Path) -> None:
    feed, out = console(tmp_path)
    (tmp_path / "logs" / "hermes.log").write_text("2026-11-28 10:00:00,000 INFO old news\n")
    feed.start_at_end()
    record = {"command_id": "cmd-1", "thread_id": "ab" * 8, "environment": "demo-website-you",
              "reply": {"to": "you@example.com", "subject": "Re: Re: Website edit"}}
    with (tmp_path / "journal.jsonl").open("a") as journal:
        journal.write(json.dumps({"t": "command", "record": record}) + "\n")
        journal.write(json.dumps({"t": "reply", "key": "ack:cmd-1"}) + "\n")
    (tmp_path / "logs" / "ns-editor.log").write_text(
        "2026-11-28 10:00:01,000 INFO webordinary.editor.worker: answered cmd-1: completed\n"
        "2026-11-28 10:00:02,000 DEBUG chatter\n")
    with (tmp_path / "logs" / "hermes.log").open("a") as log:
        log.write("2026-11-28 10:00:03,000 ERROR webordinary.hermes boom\n"
                  "Traceback (most recent call last):\n  File \"x.py\", line 1\nValueError: x\n"
                  "2026-11-28 10:00:04,000 INFO back to normal\npartial line without newl")
    feed.poll()
    lines = out.getvalue().splitlines()
    assert [line[10:19].strip() for line in lines if line[:2].isdigit()] == [
        "email in", "command", "error", "result"]
    assert "from you@example.com: 'Website edit' (thread abababababababab)" in lines[0]
    assert "cmd-1 queued for demo-website-you" in lines[1]
    assert "hermes: webordinary.hermes boom" in lines[2]
    assert lines[3:6] == ["    Traceback (most recent call last):", '      File "x.py", line 1',
                          "    ValueError: x"]
    assert "cmd-1 completed (ns-editor)" in lines[6]
    assert "old news" not in out.getvalue()
    with (tmp_path / "logs" / "hermes.log").open("a") as log:  # a crash loop: once in full
        log.write("e\n2026-11-28 10:00:05,000 ERROR webordinary.hermes boom\n"
                  "Traceback (most recent call last):\n  File \"x.py\", line 1\nValueError: x\n")
    feed.poll()
    again = out.getvalue().splitlines()[len(lines):]
    assert len(again) == 1, again
    assert again[0].endswith("hermes: webordinary.hermes boom (the same error again)")
    assert "back to normal" not in out.getvalue()


def test_a_reply_is_one_line_with_its_preview_link(tmp_path: Path) -> None:
    feed, out = console(tmp_path)
    message = EmailMessage()
    message["To"] = "you@example.com"
    message["Subject"] = "Re: Website edit"
    message["X-Webordinary-Kind"] = "result-completed"
    message.set_content("Done.\n\nPreview: http://127.0.0.1:8080/session/abababababababab/.\n")
    feed.reply(message, tmp_path / "1.eml")
    (line,) = out.getvalue().splitlines()
    assert line.endswith("[result-completed] preview "
                         "http://127.0.0.1:8080/session/abababababababab/")


def test_port_plan() -> None:
    assert ports.plan(None, {}) == {"kube": 8001, "smtp": 2525, "ingress": 8080}
    assert ports.plan(18000, {}) == {"kube": 18001, "smtp": 18025, "ingress": 18080}
    assert ports.plan(0, {"smtp": 2600}) == {"kube": 0, "smtp": 2600, "ingress": 0}


class Pipe(io.StringIO):
    """Standard output on a pipe: each write may block in the kernel and let other threads run."""

    def write(self, text: str) -> int:
        time.sleep(0)
        return super().write(text)


def test_lines_from_the_mailbox_thread_never_splice_with_the_main_threads(tmp_path: Path) -> None:
    """The SMTP sink answers in its own thread; a reply line must not run into a result line."""
    out = Pipe()
    (tmp_path / "logs").mkdir()
    feed = Console(tmp_path / "logs", tmp_path / "journal.jsonl", out=out)

    def write(kind: str) -> None:
        for _ in range(300):
            feed.line(kind, "x" * 40)

    writers = [threading.Thread(target=write, args=(kind,)) for kind in ("reply", "result")]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    lines = out.getvalue().splitlines()
    assert len(lines) == 600
    assert all(line[10:19].strip() in {"reply", "result"} and len(line) == 10 + 10 + 40
               for line in lines), [line for line in lines if len(line) != 60][:3]
