"""The whole loop as `./dev up` runs it: email in -> environment -> edit -> reply -> preview.

Every part is real and talks over its real protocol (SMTP, the Kubernetes API emulator over
HTTP, moto SQS, the Claude Code CLI against the Messages API stand-in, git, Astro); only the
cluster itself is played by the local kubelet; previews go through the real gateway.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.integration.system.test_dev_up import (
    assert_nothing_left,
    descendants,
    listeners,
    still_alive,
)

ROOT = Path(__file__).resolve().parents[3]


def test_email_to_reply_and_preview(tmp_path: Path) -> None:
    instruction = "Please add a gallery page"
    process = subprocess.Popen(
        [sys.executable, "-m", "webordinary.devkit.up", "--state", str(tmp_path),
         "--port-base", "0", "--send", instruction, "--once", "--timeout", "200"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )
    bound: set[tuple[str, int]] = set()
    seen: set[tuple[int, str]] = set()
    done = threading.Event()

    def sample() -> None:  # every process and listener while it runs (editor pods included)
        while not done.wait(0.5):
            tree = descendants(process.pid)
            seen.update(tree)
            bound.update(listeners([process.pid, *(pid for pid, _ in tree)]))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        stdout, stderr = process.communicate(timeout=280)
    finally:
        done.set()
        sampler.join()
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    run = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    assert_nothing_left(process.pid, within=20)
    deadline = time.monotonic() + 20
    while still_alive(seen) and time.monotonic() < deadline:  # editors, dev servers, the CLI
        time.sleep(0.2)
    assert not still_alive(seen), "processes of ./dev up outlived it"
    assert len(seen) >= 4, seen
    assert {address for address, _ in bound} == {"127.0.0.1"}, bound
    logs = "\n".join(
        f"== {path.name}\n{path.read_text(errors='replace')[-3000:]}"
        for path in sorted((tmp_path / "logs").glob("*.log"))
    )
    assert run.returncode == 0, f"{run.stdout[-3000:]}\n{run.stderr[-3000:]}\n{logs}"
    printed = (run.stdout + run.stderr).strip().splitlines()
    assert len(printed) <= 40, "\n".join(printed)
    outcome = json.loads(run.stdout.strip().splitlines()[-1])
    assert outcome["ok"] is True
    assert "/session/" in outcome["preview"]
    # One line per moment a person follows; the components' chatter is in .local/logs/.
    kinds = [line[10:19].strip() for line in printed if line[:2].isdigit()]
    for kind in ("sent", "email in", "command", "result", "reply", "preview"):
        assert kind in kinds, "\n".join(printed)
    assert any(line[10:].startswith("reply") and outcome["preview"] in line for line in printed), (
        "\n".join(printed))
    assert not [line for line in printed if "Traceback" in line or " 503 " in line]
    assert "?access=v1." in outcome["preview"], "the emailed link is signed"
    assert outcome["signed"] is True
    # The reply is a real email in the mailbox, threaded to the user's message.
    replies = sorted((tmp_path / "mailbox").glob("*.eml"))
    assert replies, "no reply email arrived"
    assert any(b"In-Reply-To:" in path.read_bytes() for path in replies)
    # The edit is committed on the session branch and pushed to the customer's repository.
    branches = subprocess.run(
        ["git", "-C", str(tmp_path / "repos" / "website.git"), "branch", "--list", "thread-*"],
        capture_output=True, text=True, check=True,
    ).stdout.split()
    assert branches, "the session branch was not pushed"
    log = subprocess.run(
        ["git", "-C", str(tmp_path / "repos" / "website.git"), "log", "-p", "-1", branches[-1]],
        capture_output=True, text=True, check=True,
    ).stdout
    assert instruction in log
