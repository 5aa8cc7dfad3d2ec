"""`./dev up`: the whole loop on one machine, with embedded stand-ins where no cluster exists.

Started here: the strict Kubernetes API emulator (with the CRD), moto (SQS/SES), the EKS Pod
Identity stand-in (the operator makes each editor's association there, as on EKS), the chart's
ValidatingAdmissionPolicies (Hermes and the gateway write as their ServiceAccounts), the Messages
API stand-in (a deterministic demo model unless ANTHROPIC_BASE_URL/ANTHROPIC_API_KEY point at a
real one), a bare git repository seeded with the demo site, the operator and Hermes as real
processes, the local kubelet (editor Deployments -> editor processes, their EndpointSlices), the
gateway (`/session/{threadId}/` -> the right editor, signed links) and an SMTP mailbox that prints
Hermes' replies.
Send mail to Hermes' SMTP port (or `--send "make the header blue"`) and watch the reply.

The console shows a status block, then one line per email in, command, result and reply; the
components' own logs go to `.local/logs/`. The public ports are checked before anything starts;
if a component dies, `./dev up` says which and why, stops the rest and exits non-zero.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import secrets
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
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import aiohttp
import boto3
import yaml
from aiosmtpd.controller import Controller

from webordinary.devkit import policies
from webordinary.devkit.aws import MotoServer, start_moto
from webordinary.devkit.console import Console, plain_text, preview_link
from webordinary.devkit.eks import PodIdentityApi
from webordinary.devkit.kubeapi import KubeAPI, start_kube_api
from webordinary.devkit.kubelet import LocalKubelet, free_port
from webordinary.devkit.messages_api import MessagesAPI
from webordinary.devkit.supervisor import Supervisor

log = logging.getLogger("webordinary.local")
ROOT = Path(__file__).resolve().parents[3]
NAMESPACE = "webordinary"
SENDER = "you@example.com"
PROJECT_ADDRESS = "website@edit.localhost"
HERMES_ADDRESS = "edit@localhost"
# The EKS stand-in's cluster and the editor role the operator associates (not a real account).
LOCAL_CLUSTER = "webordinary-local"
LOCAL_EDITOR_ROLE = "arn:aws:iam::000000000000:role/webordinary-editor"


@dataclass
class Mailbox:
    """SMTP sink standing for the user's inbox: keeps every reply Hermes sends, one line each."""

    folder: Path
    console: Console | None = None
    messages: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw: bytes = envelope.original_content or envelope.content
        message = message_from_bytes(raw, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.folder.mkdir(parents=True, exist_ok=True)
        saved = self.folder / f"{time.time_ns() // 1000}.eml"
        saved.write_bytes(raw)
        self.messages.append(message)
        if self.console is not None:
            self.console.reply(message, saved)
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
    share_repository(bare)
    return bare


def share_repository(bare: Path) -> None:
    """Editors run under their own uids: the local stand-in of the customer's git host is a
    world-writable bare repository (a local-only shortcut; a real host authenticates)."""
    subprocess.run(["git", "-C", str(bare), "config", "core.sharedRepository", "0777"],
                   check=True)
    subprocess.run(["chmod", "-R", "a+rwX", str(bare)], check=True)


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
            # The workspaces' StorageClass: the local kubelet binds PVCs of existing classes.
            ("/apis/storage.k8s.io/v1/storageclasses", {
                "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                "metadata": {"name": "efs-sc"}, "provisioner": "efs.csi.aws.com"}),
        ):
            async with client.post(f"{api}{path}", json=doc) as response:
                if response.status not in (200, 201, 409):
                    log.warning("creating %s: HTTP %s %s", path, response.status,
                                await response.text())


def send_mail(
    port: int, text: str, sender: str, *, in_reply_to: str | None = None,
    message_id: str | None = None,
) -> str:
    """Send one instruction email to Hermes' SMTP listener; returns its Message-ID."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = PROJECT_ADDRESS
    message["Subject"] = "Website edit"
    message["Message-ID"] = message_id or make_msgid(domain="example.com")
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
        message["References"] = in_reply_to
    message.set_content(text)
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        smtp.send_message(message)
    return str(message["Message-ID"])


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
    console: Console


def prepare(state: Path, sender: str) -> Path:
    """The on-disk part of the set-up: state folder, demo repository, routing file."""
    state.mkdir(parents=True, exist_ok=True)
    repository = seed_repository(state)
    routing = state / "routing.yaml"
    routing.write_text(yaml.safe_dump(routing_config(repository, sender)))
    return routing


def link_keys(folder: Path) -> Path:
    """The signed-link key Hermes and the gateway share (a Secret on a cluster), made once."""
    folder.mkdir(parents=True, exist_ok=True)
    current = folder / "current"
    if not current.exists():
        current.write_text(secrets.token_hex(32) + "\n")
        current.chmod(0o600)
    return folder


def start_gateway(supervisor: Supervisor, kube_url: str, port: int, keys: Path,
                  token: str) -> str:
    """The real gateway, the previews' front door, with production settings (signed links,
    Secure cookies: browsers keep those for http://127.0.0.1 too). Returns its URL."""
    port = port or free_port()
    supervisor.spawn("gateway", "webordinary.gateway", {
        "WEBORDINARY_GATEWAY_KUBE_API_URL": kube_url,
        "WEBORDINARY_GATEWAY_KUBE_API_TOKEN": token,
        "WEBORDINARY_GATEWAY_NAMESPACES": NAMESPACE,
        "WEBORDINARY_GATEWAY_HOST": "127.0.0.1",
        "WEBORDINARY_GATEWAY_PORT": str(port),
        "WEBORDINARY_GATEWAY_METRICS_HOST": "127.0.0.1",
        "WEBORDINARY_GATEWAY_METRICS_PORT": "0",
        "WEBORDINARY_GATEWAY_LINK_KEYS_DIR": str(keys),
    })
    return f"http://127.0.0.1:{port}"


def model_line(own_model: bool) -> str:
    if own_model:
        return f"your Messages API at {os.environ['ANTHROPIC_BASE_URL']}"
    return ("the demo stand-in: it appends your instruction to the home page as a paragraph "
            "(see README)")


async def run(args: argparse.Namespace, routing: Path) -> int:
    state: Path = args.state
    logs = state / "logs"
    console = Console(logs, state / "hermes-journal.jsonl")
    console.start_at_end()
    supervisor = Supervisor(logs)
    cleanups: list[Callable[[], Awaitable[None] | None]] = []
    kubelet_task: asyncio.Task[None] | None = None
    code, failure = 0, "failed"
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        # A plain handler that wakes the loop through its own self-pipe (robust even when a
        # library thread has touched the process-wide signal wake-up fd).
        signal.signal(sig, lambda *_: loop.call_soon_threadsafe(stopping.set))
    try:
        kube = start_kube_api(sorted((ROOT / "crds").glob("*.yaml")), port=args.ports["kube"])
        cleanups.append(kube.stop)
        moto = start_moto()
        cleanups.append(moto.stop)
        ses = boto3.client("ses", endpoint_url=moto.endpoint_url, region_name="us-east-1")
        ses.verify_email_identity(EmailAddress=HERMES_ADDRESS)
        eks = PodIdentityApi(clusters=[LOCAL_CLUSTER], roles=[LOCAL_EDITOR_ROLE]).start()
        cleanups.append(eks.stop)
        own_model = bool(os.environ.get("ANTHROPIC_BASE_URL"))
        messages = None if own_model else MessagesAPI(demo=True).start()
        if messages is not None:
            cleanups.append(messages.stop)
        await put_secret(kube.url, "anthropic",
                         {"api-key": os.environ.get("ANTHROPIC_API_KEY", "local-stand-in")})
        # The chart's admission policies, enforced by the emulator on Hermes' and the
        # gateway's writes (each presents its ServiceAccount's token) as on a cluster.
        identities, _ = await policies.install(kube.url, "webordinary", NAMESPACE, {
            "environments": {"namespace": NAMESPACE},
            "aws": {"eksClusterName": LOCAL_CLUSTER},
            "editor": {"podIdentityRoleArn": LOCAL_EDITOR_ROLE}})
        for token, user in identities.users.items():
            kube.add_user(token, user)

        mailbox = Mailbox(state / "mailbox", console)
        sink = Controller(mailbox, hostname="127.0.0.1", port=free_port())
        sink.start()
        cleanups.append(sink.stop)

        # Local knobs for every container of an editor pod (none of them secret): loopback
        # only. The model API's URL goes to the credential proxy through the operator.
        editor_env = {
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "WEBORDINARY_EDITOR_PREVIEW_HOST": "127.0.0.1",
            "WEBORDINARY_PREVIEW_HOST": "127.0.0.1",
            "WEBORDINARY_CREDENTIALS_METRICS_HOST": "127.0.0.1",
            "WEBORDINARY_EDITOR_POLL_WAIT_SECONDS": "2",
        }
        kubelet = LocalKubelet(kube.url, state, extra_env=editor_env)
        keys = link_keys(state / "link-keys")
        ingress_url = start_gateway(supervisor, kube.url, args.ports["ingress"], keys,
                                    identities.gateway_token)
        smtp_port = args.ports["smtp"] or free_port()

        common = {"AWS_DEFAULT_REGION": "us-east-1"}
        supervisor.spawn("operator", "webordinary.operator", {
            **common,
            "WEBORDINARY_OPERATOR_KUBE_API_URL": kube.url,
            "WEBORDINARY_OPERATOR_SQS_ENDPOINT_URL": moto.endpoint_url,
            # The chart's default: one EKS Pod Identity association per environment.
            "WEBORDINARY_OPERATOR_EDITOR_AWS_IDENTITY": "pod-identity",
            "WEBORDINARY_OPERATOR_EKS_CLUSTER_NAME": LOCAL_CLUSTER,
            "WEBORDINARY_OPERATOR_EDITOR_ROLE_ARN": LOCAL_EDITOR_ROLE,
            "WEBORDINARY_OPERATOR_EKS_ENDPOINT_URL": eks.endpoint_url,
            "WEBORDINARY_OPERATOR_ANTHROPIC_SECRET_NAME": "anthropic",
            "WEBORDINARY_OPERATOR_ANTHROPIC_API_BASE_URL": (
                messages.base_url if messages is not None
                else os.environ["ANTHROPIC_BASE_URL"]),
            "WEBORDINARY_OPERATOR_PREVIEW_BASE_URL": ingress_url,
            # The production drift interval: sleep and wake do not depend on it.
            "WEBORDINARY_OPERATOR_METRICS_HOST": "127.0.0.1",
            "WEBORDINARY_OPERATOR_METRICS_PORT": "0",
            "WEBORDINARY_OPERATOR_LIVENESS_PORT": "0",
        })
        supervisor.spawn("hermes", "webordinary.hermes", {
            **common,
            "WEBORDINARY_HERMES_NAMESPACE": NAMESPACE,
            "WEBORDINARY_HERMES_KUBE_API_URL": kube.url,
            "WEBORDINARY_HERMES_KUBE_API_TOKEN": identities.hermes_token,
            "WEBORDINARY_HERMES_AWS_ENDPOINT_URL": moto.endpoint_url,
            "WEBORDINARY_HERMES_FROM_ADDRESS": HERMES_ADDRESS,
            "WEBORDINARY_HERMES_PREVIEW_BASE_URL": ingress_url,
            "WEBORDINARY_HERMES_PREVIEW_LINK_KEYS_DIR": str(keys),
            "WEBORDINARY_HERMES_ROUTING_FILE": str(routing),
            "WEBORDINARY_HERMES_JOURNAL_PATH": str(console.journal),
            "WEBORDINARY_HERMES_SMTP_ENABLED": "true",
            "WEBORDINARY_HERMES_SMTP_HOST": "127.0.0.1",
            "WEBORDINARY_HERMES_SMTP_PORT": str(smtp_port),
            "WEBORDINARY_HERMES_SMTP_OUTBOUND_HOST": "127.0.0.1",
            "WEBORDINARY_HERMES_SMTP_OUTBOUND_PORT": str(sink.port),
            "WEBORDINARY_HERMES_METRICS_HOST": "127.0.0.1",
            "WEBORDINARY_HERMES_METRICS_PORT": "0",
        })
        kubelet_task = asyncio.create_task(kubelet.run())
        stack = Stack(kube, moto, messages, mailbox, smtp_port, ingress_url, console)

        watch = asyncio.create_task(supervise(supervisor, console, kubelet_task, stopping))
        await first_of(stopping, wait_for(lambda: smtp_ready(smtp_port), 60,
                                          "Hermes' SMTP listener"))
        if not stopping.is_set():
            print(status_block(args, stack, own_model), flush=True)
        if args.send and not stopping.is_set():
            shown = await first_of(stopping, demo(stack, args))
            if shown is None and args.once:
                code, failure = 1, "stopped before the reply and the preview were checked"
        if not args.once:
            await stopping.wait()
        if watch.done() and watch.result():
            code, failure = 1, watch.result() or failure
        else:
            watch.cancel()
            if not args.once:
                print("stopping: editors commit and push their work first", flush=True)
    except (TimeoutError, AssertionError, OSError) as exc:
        dead = supervisor.casualty()
        failure = supervisor.describe(dead) if dead else str(exc)
        print(f"error: {failure}", file=sys.stderr, flush=True)
        code = 1
    finally:
        if kubelet_task is not None:
            kubelet_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await kubelet_task
        supervisor.stop_all()
        for cleanup in reversed(cleanups):
            with contextlib.suppress(Exception):
                result = cleanup()
                if result is not None:
                    await result
    if args.once and code:
        print(json.dumps({"ok": False, "error": failure.splitlines()[0]}), flush=True)
    return code


async def supervise(
    supervisor: Supervisor, console: Console, kubelet: asyncio.Task[None],
    stopping: asyncio.Event,
) -> str | None:
    """Print the event lines; if a component dies, say which and why, and stop (the reason)."""
    while not stopping.is_set():
        console.poll()
        dead = supervisor.casualty()
        problem = supervisor.describe(dead) if dead is not None else None
        if problem is None and kubelet.done():
            error = kubelet.exception() if not kubelet.cancelled() else None
            problem = f"the local kubelet stopped: {error!r}"
        if problem is not None:
            print(f"error: {problem}\nstopping everything else", file=sys.stderr, flush=True)
            stopping.set()
            return problem
        await asyncio.sleep(0.5)
    console.poll()
    return None


def status_block(args: argparse.Namespace, stack: Stack, own_model: bool) -> str:
    state = args.state
    return (
        f"Webordinary is running locally (state in {state}).\n"
        f"  Kubernetes API  kubectl --server {stack.kube.url} get editenvironments -A\n"
        f"  Send an email   SMTP 127.0.0.1:{stack.smtp_port}, From {args.sender}, "
        f"To {PROJECT_ADDRESS}\n"
        f"  Previews        {stack.ingress_url}/session/<threadId>/\n"
        f"  Replies         one line each below, kept in {stack.mailbox.folder}\n"
        f"  Model           {model_line(own_model)}\n"
        f"  Logs            {state / 'logs'}\n"
        f"Ctrl-C stops everything (editors commit and push first)."
    )


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
    message_id = make_msgid(domain="example.com")
    stack.console.sent(args.send, message_id, PROJECT_ADDRESS)
    await asyncio.to_thread(send_mail, stack.smtp_port, args.send, args.sender,
                            message_id=message_id)

    async def replied_with_preview() -> bool:
        return any(preview_link(plain_text(m)) and not is_ack(m)
                   for m in stack.mailbox.messages[before:])

    await wait_for(replied_with_preview, args.timeout, "the reply email")
    reply = next(m for m in stack.mailbox.messages[before:]
                 if preview_link(plain_text(m)) and not is_ack(m))
    link = preview_link(plain_text(reply))
    assert link is not None
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as client:
        # The signed link is swapped for a cookie scoped to the session, at a clean address.
        async with client.get(link, allow_redirects=False) as response:
            assert response.status == 303, f"the signed link {link} answered {response.status}"
            clean = urljoin(link, response.headers["Location"])
            jar: SimpleCookie = SimpleCookie()
            for header in response.headers.getall("Set-Cookie"):
                jar.load(header)
        cookie = "; ".join(f"{k}={v.value}" for k, v in jar.items())
        async with client.get(clean) as response:
            assert response.status == 403, "without the link's cookie the preview is refused"

        async def preview_shows_edit() -> bool:
            try:
                async with client.get(clean, headers={"Cookie": cookie}) as response:
                    return response.status == 200 and args.send in await response.text()
            except aiohttp.ClientError:
                return False

        await wait_for(preview_shows_edit, args.timeout, f"the preview at {clean} to show the edit")
    stack.console.line("preview", f"{clean} shows the edit (signed link, cookie)")
    print(json.dumps({"reply": str(reply["Subject"]), "preview": link, "signed": True,
                      "ok": True}), flush=True)
    return 0


def is_ack(message: EmailMessage) -> bool:
    """Hermes' immediate acknowledgement carries a header saying so."""
    return str(message.get("X-Webordinary-Kind", "")).lower() == "ack"


def main() -> None:
    """`python -m webordinary.devkit.local` is `./dev up` (webordinary.devkit.up)."""
    from webordinary.devkit.up import main as up

    up()


def start(args: argparse.Namespace) -> int:
    """Everything after the port check: state, logging, then the stack until it stops."""
    args.state = args.state.resolve()
    quiet_logging(args.state / "logs")
    routing = prepare(args.state, args.sender)
    return asyncio.run(run(args, routing))


def quiet_logging(logs: Path) -> None:
    """The in-process stand-ins (API emulator, moto, kubelet) log to a file."""
    logs.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(logs / "devkit.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's access log


if __name__ == "__main__":
    main()
