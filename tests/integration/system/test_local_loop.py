"""The whole loop as `./dev up` runs it: email in -> environment -> edit -> reply -> preview.

Every part is real and talks over its real protocol (SMTP, the Kubernetes API emulator over
HTTP, moto SQS, the Claude Code CLI against the Messages API stand-in, git, Astro); only the
cluster itself is played by the local kubelet and ingress stand-ins.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from webordinary.devkit.kubelet import free_port

ROOT = Path(__file__).resolve().parents[3]


def test_email_to_reply_and_preview(tmp_path: Path) -> None:
    instruction = "Please add a gallery page"
    run = subprocess.run(
        [sys.executable, "-m", "webordinary.devkit.local", "--state", str(tmp_path),
         "--kube-port", str(free_port()), "--smtp-port", str(free_port()),
         "--ingress-port", str(free_port()), "--send", instruction, "--once",
         "--timeout", "200"],
        cwd=ROOT, capture_output=True, text=True, timeout=280, check=False,
    )
    logs = "\n".join(
        f"== {path.name}\n{path.read_text(errors='replace')[-3000:]}"
        for path in sorted((tmp_path / "logs").glob("*.log"))
    )
    assert run.returncode == 0, f"{run.stdout[-3000:]}\n{run.stderr[-3000:]}\n{logs}"
    outcome = json.loads(run.stdout.strip().splitlines()[-1])
    assert outcome["ok"] is True
    assert "/session/" in outcome["preview"]
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
