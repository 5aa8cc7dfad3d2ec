"""`./dev up`: the whole loop on one machine, with embedded stand-ins where no cluster exists.

Started here: the strict Kubernetes API emulator (with the CRD), moto (SQS/SES), the Messages
API stand-in (a deterministic demo model unless ANTHROPIC_BASE_URL/ANTHROPIC_API_KEY point at a
real one), a bare git repository seeded with the demo site, the operator and Hermes as real
processes, the local kubelet (editor Deployments -> editor processes), the local ingress
(`/session/{threadId}/` -> the right editor) and an SMTP mailbox that prints Hermes' replies.
Send mail to Hermes' SMTP port (or `--send "make the header blue"`) and watch the reply.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import smtplib
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import aiohttp
import boto3
import yaml
from aiohttp import web
from aiosmtpd.controller import Controller

from webordinary.devkit.aws import MotoServer, start_moto
from webordinary.devkit.ingress import LocalIngress
from webordinary.devkit.kubeapi import KubeAPI, start_kube_api
from webordinary.devkit.kubelet import LocalKubelet, free_port
from webordinary.devkit.messages_api import MessagesAPI

log = logging.getLogger("webordinary.local")
ROOT = Path(__file__).resolve().parents[3]
NAMESPACE = "webordinary"
SENDER = "you@example.com"
PROJECT_ADDRESS = "website@edit.localhost"
HERMES_ADDRESS = "edit@localhost"


@dataclass
class Mailbox:
    """SMTP sink standing for the user's inbox: keeps and prints every reply Hermes sends."""

    folder: Path
    messages: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw: bytes = envelope.original_content or envelope.content
        message = message_from_bytes(raw, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / f"{int(time.time() * 1000)}.eml").write_bytes(raw)
        self.messages.append(message)
        body = message.get_body(("plain",))
        text = body.get_content() if body is not None else ""
        print(f"\n--- reply to {message['To']}: {message['Subject']}\n{text.strip()}\n---",
              flush=True)
        return "250 OK"


def seed_repository(state: Path) -> Path:
    """A bare repository holding the demo site: the customer's website repository."""
    bare = state / "repos" / "website.git"
    if bare.exists():
        return bare
    work = state / "repos" / "website-seed"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(ROOT / "tests" / "fixtures" / "site", work,
                    ignore=shutil.ignore_patterns("node_modules", "dist", ".astro"))
    git = ["git", "-c", "user.name=Demo", "-c", "user.email=demo@example.com"]
    subprocess.run([*git, "init", "-q", "-b", "main", str(work)], check=True)
    subprocess.run([*git, "-C", str(work), "add", "-A"], check=True)
    subprocess.run([*git, "-C", str(work), "commit", "-qm", "The demo website"], check=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    shutil.rmtree(work)
    return bare


def routing_config(repository: Path, sender: str) -> dict[str, Any]:
    """Hermes routing: the local sender edits the demo project."""
    return {
        "senders": [{"address": sender, "clientId": "demo", "userId": "you"}],
        "projects": [{
            "address": PROJECT_ADDRESS, "clientId": "demo", "projectId": "website",
            "repository": {"url": repository.as_uri(), "branch": "main"},
        }],
    }


async def put_secret(api: str, name: str, data: dict[str, str]) -> None:
    """Create the namespace's Secret the operator maps into editors (idempotent)."""
    body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
            "type": "Opaque", "stringData": data}
    async with aiohttp.ClientSession() as client:
        for path, doc in (
            ("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                    "metadata": {"name": NAMESPACE}}),
            (f"/api/v1/namespaces/{NAMESPACE}/secrets", body),
        ):
            async with client.post(f"{api}{path}", json=doc) as response:
                if response.status not in (200, 201, 409):
                    log.warning("creating %s: HTTP %s %s", path, response.status,
                                await response.text())


def send_mail(port: int, text: str, sender: str, *, in_reply_to: str | None = None) -> str:
    """Send one instruction email to Hermes' SMTP listener; returns its Message-ID."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = PROJECT_ADDRESS
    message["Subject"] = "Website edit"
    message["Message-ID"] = make_msgid(domain="example.com")
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
        message["References"] = in_reply_to
    message.set_content(text)
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        smtp.send_message(message)
    return str(message["Message-ID"])


def spawn(name: str, module: str, env: dict[str, str], logs: Path) -> subprocess.Popen[bytes]:
    """Start a component as its own process (as it runs in its own pod), logging to a file."""
    logs.mkdir(parents=True, exist_ok=True)
    sink = (logs / f"{name}.log").open("ab")
    log.info("starting %s (log: %s)", name, logs / f"{name}.log")
    return subprocess.Popen([sys.executable, "-m", module], env={**os.environ, **env},
                            stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)


def stop(process: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    """SIGTERM, then SIGKILL after the grace period."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def wait_for(check: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.5)
    raise TimeoutError(f"timed out after {within:.0f}s waiting for {what}")


@dataclass
class Stack:
    """Everything `./dev up` started, for the demo and for shutdown."""

    kube: KubeAPI
    moto: MotoServer
    messages: MessagesAPI | None
    mailbox: Mailbox
    smtp_port: int
    ingress_url: str
    processes: list[subprocess.Popen[bytes]]


def prepare(state: Path, sender: str) -> Path:
    """The on-disk part of the set-up: state folder, demo repository, routing file."""
    state.mkdir(parents=True, exist_ok=True)
    repository = seed_repository(state)
    routing = state / "routing.yaml"
    routing.write_text(yaml.safe_dump(routing_config(repository, sender)))
    return routing


async def run(args: argparse.Namespace, routing: Path) -> int:
    state: Path = args.state
    logs = state / "logs"
    kube = start_kube_api(sorted((ROOT / "crds").glob("*.yaml")), port=args.kube_port)
    moto = start_moto()
    ses = boto3.client("ses", endpoint_url=moto.endpoint_url, region_name="us-east-1")
    ses.verify_email_identity(EmailAddress=HERMES_ADDRESS)
    own_model = bool(os.environ.get("ANTHROPIC_BASE_URL"))
    messages = None if own_model else MessagesAPI(demo=True).start()
    await put_secret(kube.url, "anthropic",
                     {"api-key": os.environ.get("ANTHROPIC_API_KEY", "local-stand-in")})

    mailbox = Mailbox(state / "mailbox")
    sink_port = free_port()
    sink = Controller(mailbox, hostname="127.0.0.1", port=sink_port)
    sink.start()

    ingress_url = f"http://127.0.0.1:{args.ingress_port}"
    common = {"AWS_DEFAULT_REGION": "us-east-1"}
    operator = spawn("operator", "webordinary.operator", {
        **common,
        "WEBORDINARY_OPERATOR_KUBE_API_URL": kube.url,
        "WEBORDINARY_OPERATOR_SQS_ENDPOINT_URL": moto.endpoint_url,
        "WEBORDINARY_OPERATOR_ANTHROPIC_SECRET_NAME": "anthropic",
        "WEBORDINARY_OPERATOR_PREVIEW_BASE_URL": ingress_url,
        "WEBORDINARY_OPERATOR_DRIFT_INTERVAL_SECONDS": "10",
        "WEBORDINARY_OPERATOR_DRIFT_INITIAL_DELAY_SECONDS": "2",
        "WEBORDINARY_OPERATOR_METRICS_PORT": "0",
    }, logs)
    hermes = spawn("hermes", "webordinary.hermes", {
        **common,
        "WEBORDINARY_HERMES_NAMESPACE": NAMESPACE,
        "WEBORDINARY_HERMES_KUBE_API_URL": kube.url,
        "WEBORDINARY_HERMES_AWS_ENDPOINT_URL": moto.endpoint_url,
        "WEBORDINARY_HERMES_FROM_ADDRESS": HERMES_ADDRESS,
        "WEBORDINARY_HERMES_PREVIEW_BASE_URL": ingress_url,
        "WEBORDINARY_HERMES_ROUTING_FILE": str(routing),
        "WEBORDINARY_HERMES_JOURNAL_PATH": str(state / "hermes-journal.jsonl"),
        "WEBORDINARY_HERMES_SMTP_ENABLED": "true",
        "WEBORDINARY_HERMES_SMTP_PORT": str(args.smtp_port),
        "WEBORDINARY_HERMES_SMTP_OUTBOUND_HOST": "127.0.0.1",
        "WEBORDINARY_HERMES_SMTP_OUTBOUND_PORT": str(sink_port),
        "WEBORDINARY_HERMES_METRICS_PORT": "0",
    }, logs)
    editor_env = {
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "WEBORDINARY_EDITOR_PREVIEW_HOST": "127.0.0.1",
        "WEBORDINARY_EDITOR_POLL_WAIT_SECONDS": "2",
    }
    if messages is not None:
        editor_env["ANTHROPIC_BASE_URL"] = messages.base_url
    kubelet = LocalKubelet(kube.url, state, extra_env=editor_env)
    kubelet_task = asyncio.create_task(kubelet.run())
    runner = web.AppRunner(LocalIngress(kube.url, kubelet).app())
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", args.ingress_port).start()
    stack = Stack(kube, moto, messages, mailbox, args.smtp_port, ingress_url, [operator, hermes])

    print(
        f"\nWebordinary is running locally (state in {state}).\n"
        f"  Kubernetes API   kubectl --server {kube.url} get editenvironments -A\n"
        f"  Send an email    SMTP 127.0.0.1:{args.smtp_port}, From {args.sender}, "
        f"To {PROJECT_ADDRESS}\n"
        f"  Previews         {ingress_url}/session/<threadId>/\n"
        f"  Replies          printed here and kept in {mailbox.folder}\n"
        f"  Logs             {logs}\n",
        flush=True,
    )
    code = 0
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        # A plain handler that wakes the loop through its own self-pipe (robust even when a
        # library thread has touched the process-wide signal wake-up fd).
        signal.signal(sig, lambda *_: loop.call_soon_threadsafe(stopping.set))
    try:
        await first_of(stopping, wait_for(
            lambda: smtp_ready(args.smtp_port), 60, "Hermes' SMTP listener"))
        if args.send and not stopping.is_set():
            code = await first_of(stopping, demo(stack, args)) or 0
        if not args.once:
            await stopping.wait()
            print("stopping: editors commit and push their work first", flush=True)
    except (TimeoutError, AssertionError) as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        code = 1
    finally:
        kubelet_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await kubelet_task
        await runner.cleanup()
        for process in stack.processes:
            stop(process)
        sink.stop()
        if messages is not None:
            messages.stop()
        moto.stop()
        kube.stop()
    return code


async def first_of[T](stopping: asyncio.Event, work: Awaitable[T]) -> T | None:
    """Run `work` unless a stop is asked for first (then it is cancelled)."""
    task = asyncio.ensure_future(work)
    stop = asyncio.create_task(stopping.wait())
    await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
    stop.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return None
    return task.result()


async def smtp_ready(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    return True


async def demo(stack: Stack, args: argparse.Namespace) -> int:
    """Send `--send` as an email, wait for the result reply, check the preview shows it."""
    before = len(stack.mailbox.messages)
    send_mail(stack.smtp_port, args.send, args.sender)
    print(f"sent: {args.send!r}", flush=True)

    async def replied_with_preview() -> bool:
        return any("/session/" in str(m.get_body(("plain",)).get_content())  # type: ignore[union-attr]
                   and not is_ack(m) for m in stack.mailbox.messages[before:])

    await wait_for(replied_with_preview, args.timeout, "the reply email")
    reply = next(m for m in stack.mailbox.messages[before:] if not is_ack(m))
    text = str(reply.get_body(("plain",)).get_content())  # type: ignore[union-attr]
    link = next(word for word in text.split() if "/session/" in word).rstrip(".,)>")
    async with aiohttp.ClientSession() as client:
        async def preview_shows_edit() -> bool:
            try:
                async with client.get(link) as response:
                    return response.status == 200 and args.send in await response.text()
            except aiohttp.ClientError:
                return False

        await wait_for(preview_shows_edit, args.timeout, f"the preview at {link} to show the edit")
    print(json.dumps({"reply": str(reply["Subject"]), "preview": link, "ok": True}), flush=True)
    return 0


def is_ack(message: EmailMessage) -> bool:
    """Hermes' immediate acknowledgement carries a header saying so."""
    return str(message.get("X-Webordinary-Kind", "")).lower() == "ack"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--state", type=Path, default=ROOT / ".local",
                        help="folder for volumes, repositories, mailbox and logs")
    parser.add_argument("--kube-port", type=int, default=8001)
    parser.add_argument("--smtp-port", type=int, default=2525)
    parser.add_argument("--ingress-port", type=int, default=8080)
    parser.add_argument("--sender", default=SENDER)
    parser.add_argument("--send", help="send this instruction as an email once all is up")
    parser.add_argument("--once", action="store_true",
                        help="with --send: exit after the reply and preview check (0 = ok)")
    parser.add_argument("--timeout", type=float, default=240.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args.state = args.state.resolve()
    routing = prepare(args.state, args.sender)
    sys.exit(asyncio.run(run(args, routing)))


if __name__ == "__main__":
    main()
