"""An editor under test: a real `python -m webordinary.editor` process over moto SQS, real git
(a local bare repository as the remote) and the real Claude CLI against the Messages API
stand-in."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from webordinary.devkit.aws import FAKE_CREDENTIALS, MotoServer
from webordinary.devkit.messages_api import MessagesAPI
from webordinary.editor.sessions import STAMP, lock_digest

ROOT = Path(__file__).resolve().parents[3]
SITE = ROOT / "tests" / "fixtures" / "site"
SKIP_SITE = {"node_modules", "dist", ".astro"}
ENVIRONMENT = "acme-site-ann"


def git(*args: str, cwd: Path) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          check=True)
    return done.stdout


def make_remote(base: Path) -> Path:
    """A bare repository holding the fixture site on `main` (what the customer's repo is)."""
    seed = base / "seed"
    shutil.copytree(SITE, seed, ignore=lambda _d, names: [n for n in names if n in SKIP_SITE])
    git("init", "-q", "-b", "main", cwd=seed)
    git("add", "-A", cwd=seed)
    git("commit", "-q", "-m", "Initial site", cwd=seed)
    remote = base / "remote.git"
    git("clone", "-q", "--bare", str(seed), str(remote), cwd=base)
    return remote


@dataclass
class Editor:
    """The process, its log and how to stop it."""

    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    prefix: list[str] = field(default_factory=list)

    def start(self) -> Editor:
        self.started_at = time.monotonic()
        handle = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [*self.prefix, sys.executable, "-m", "webordinary.editor"], env=self.env, cwd=ROOT,
            stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
        )
        handle.close()
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_log(self, needle: str, timeout: float = 30.0, count: int = 1) -> None:
        deadline = time.monotonic() + timeout
        while self.log().count(needle) < count:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"editor exited early:\n{self.log()[-4000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{needle!r} not logged in time:\n{self.log()[-4000:]}")
            time.sleep(0.05)

    def wait_ready(self, timeout: float = 30.0) -> float:
        self.wait_log("editor ready", timeout)
        return time.monotonic() - self.started_at

    def preview_port(self) -> int:
        match = re.search(r"previews on port (\d+)", self.log())
        assert match, self.log()[-2000:]
        return int(match.group(1))

    def metrics_port(self) -> int:
        match = re.search(r"health and metrics on port (\d+)", self.log())
        assert match, self.log()[-2000:]
        return int(match.group(1))

    def get(self, path: str, timeout: float = 10.0, port: int | None = None) -> tuple[int, str]:
        """GET from the editor's preview entry point (or another of its ports)."""
        url = f"http://127.0.0.1:{port or self.preview_port()}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                return response.status, response.read().decode(errors="replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")

    def wait_page(self, path: str, needle: str, timeout: float = 40.0) -> str:
        """Poll a preview page until it answers 200 with `needle` in it."""
        deadline = time.monotonic() + timeout
        status, body = 0, ""
        while time.monotonic() < deadline:
            status, body = self.get(path)
            if status == 200 and needle in body:
                return body
            time.sleep(0.2)
        raise AssertionError(f"{path} never showed {needle!r}: {status} {body[:500]}")

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        """SIGKILL the editor and everything it started (a crashed pod loses them all)."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)


@dataclass
class Rig:
    """Queues, remote, workspace and stand-in for one test; starts editors on demand."""

    base: Path
    moto: MotoServer
    api: MessagesAPI
    max_receive_count: int = 2
    extra_env: dict[str, str] = field(default_factory=dict)
    editors: list[Editor] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sqs: Any = boto3.client("sqs", endpoint_url=self.moto.endpoint_url,
                                     region_name="us-east-1")
        suffix = uuid.uuid4().hex[:8]
        self.dlq_url = self.sqs.create_queue(QueueName=f"dlq-{suffix}")["QueueUrl"]
        dlq_arn = self.sqs.get_queue_attributes(
            QueueUrl=self.dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.input_url = self.sqs.create_queue(QueueName=f"input-{suffix}", Attributes={
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn,
                                         "maxReceiveCount": str(self.max_receive_count)}),
        })["QueueUrl"]
        self.output_url = self.sqs.create_queue(QueueName=f"output-{suffix}")["QueueUrl"]
        self.remote = make_remote(self.base)
        self.workspace = self.base / "workspace"
        self.results_seen: list[dict[str, Any]] = []

    def environ(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("WEBORDINARY_", "ANTHROPIC_", "CLAUDE"))}
        env.update(FAKE_CREDENTIALS)
        env.update({
            "WEBORDINARY_ENVIRONMENT": ENVIRONMENT, "WEBORDINARY_NAMESPACE": "default",
            "WEBORDINARY_CLIENT_ID": "acme", "WEBORDINARY_PROJECT_ID": "site",
            "WEBORDINARY_USER_ID": "ann", "WEBORDINARY_CONTAINER_ID": ENVIRONMENT,
            "WEBORDINARY_INPUT_QUEUE_URL": self.input_url,
            "WEBORDINARY_OUTPUT_QUEUE_URL": self.output_url,
            "WEBORDINARY_DLQ_URL": self.dlq_url,
            "WEBORDINARY_WORKSPACE": str(self.workspace),
            "WEBORDINARY_REPOSITORY_URL": str(self.remote),
            "WEBORDINARY_REPOSITORY_BRANCH": "main",
            "WEBORDINARY_SQS_ENDPOINT_URL": self.moto.endpoint_url,
            "WEBORDINARY_PREVIEW_PORT": "0", "WEBORDINARY_METRICS_PORT": "0",
            "ANTHROPIC_BASE_URL": self.api.base_url, "ANTHROPIC_API_KEY": "sk-test",
            "WEBORDINARY_EDITOR_MODEL": "claude-sonnet-4-5",
            "WEBORDINARY_EDITOR_CLI_MAX_RETRIES": "0",
            "WEBORDINARY_EDITOR_PREVIEWS_ENABLED": "false",
            "WEBORDINARY_EDITOR_NPM_INSTALL": "false",
            "WEBORDINARY_EDITOR_VISIBILITY_TIMEOUT_SECONDS": "30",
            "WEBORDINARY_EDITOR_RETRY_BACKOFF_SECONDS": "0",
            "WEBORDINARY_EDITOR_SHUTDOWN_GRACE_SECONDS": "15",
            "WEBORDINARY_EDITOR_LOG_LEVEL": "INFO",
        })
        env.update(self.extra_env)
        return env

    def enable_previews(self) -> None:
        """Real Astro dev servers: node_modules hard-linked from the fixture, stamp matching."""
        modules = SITE / "node_modules"
        if not (modules / "astro" / "package.json").is_file():
            raise AssertionError("the Astro fixture site has no node_modules: run ./dev setup")
        target = self.workspace / "sessions" / "node_modules"
        target.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["cp", "-al", str(modules), str(target)], check=True)
        digest = lock_digest(self.base / "seed")
        assert digest is not None
        (target / STAMP).write_text(digest)
        self.extra_env.update({
            "WEBORDINARY_EDITOR_PREVIEWS_ENABLED": "true",
            "WEBORDINARY_EDITOR_NPM_INSTALL": "true",
            "WEBORDINARY_EDITOR_PREVIEW_HOST": "127.0.0.1",
        })

    def start_editor(self, ready: bool = True, prefix: list[str] | None = None) -> Editor:
        """Start an editor process (`prefix`: a command it runs under, e.g. `unshare`)."""
        editor = Editor(self.environ(), self.base / f"editor-{len(self.editors)}.log",
                        prefix=prefix or []).start()
        self.editors.append(editor)
        if ready:
            editor.wait_ready()
        return editor

    def close(self) -> None:
        for editor in self.editors:
            editor.kill()

    def send(self, body: dict[str, Any] | str) -> float:
        raw = body if isinstance(body, str) else json.dumps(body)
        self.sqs.send_message(QueueUrl=self.input_url, MessageBody=raw)
        return time.monotonic()

    def results(self, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Wait for `count` new results on the output queue (deleting them)."""
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(found) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                logs = "\n".join(e.log()[-3000:] for e in self.editors)
                raise AssertionError(f"got {len(found)} of {count} results: {found}\n{logs}")
            answer = self.sqs.receive_message(QueueUrl=self.output_url, MaxNumberOfMessages=10,
                                              WaitTimeSeconds=min(1, max(0, int(remaining))))
            for message in answer.get("Messages", []):
                found.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.output_url,
                                        ReceiptHandle=message["ReceiptHandle"])
        self.results_seen.extend(found)
        return found

    def drain_results(self, wait: float = 1.0) -> list[dict[str, Any]]:
        """Whatever else arrives on the output queue within `wait` seconds."""
        answer = self.sqs.receive_message(QueueUrl=self.output_url, MaxNumberOfMessages=10,
                                          WaitTimeSeconds=int(wait))
        found = [json.loads(m["Body"]) for m in answer.get("Messages", [])]
        for message in answer.get("Messages", []):
            self.sqs.delete_message(QueueUrl=self.output_url,
                                    ReceiptHandle=message["ReceiptHandle"])
        return found

    def no_more_results(self, wait: float = 1.0) -> None:
        answer = self.sqs.receive_message(QueueUrl=self.output_url, MaxNumberOfMessages=10,
                                          WaitTimeSeconds=int(wait))
        assert not answer.get("Messages"), answer.get("Messages")

    def wait_empty(self, url: str, timeout: float = 10.0) -> None:
        """The result goes out before the delete: give the delete a moment."""
        deadline = time.monotonic() + timeout
        while self.queue_depth(url) != 0:
            assert time.monotonic() < deadline, f"{url} still holds messages"
            time.sleep(0.1)

    def queue_depth(self, url: str) -> int:
        attrs = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(
            attrs["ApproximateNumberOfMessagesNotVisible"])

    @property
    def repo(self) -> Path:
        return self.workspace / "repo"

    def branch_files(self, branch: str, where: Path | None = None) -> list[str]:
        out = git("ls-tree", "-r", "--name-only", branch, cwd=where or self.repo)
        return out.split()

    def show(self, ref: str, path: str, where: Path | None = None) -> str:
        return git("show", f"{ref}:{path}", cwd=where or self.repo)

    def log_messages(self, branch: str, where: Path | None = None) -> list[str]:
        out = git("log", "--format=%B%x00", branch, cwd=where or self.repo)
        return [m.strip() for m in out.split("\x00") if m.strip()]


def command(session: str, command_id: str, instruction: str = "Change the headline",
            kind: str = "edit", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "version": "v1", "sessionId": session, "commandId": command_id, "type": kind,
        "instruction": instruction, "context": {"branch": f"thread-{session}"},
    }
    body.update(extra)
    return body
