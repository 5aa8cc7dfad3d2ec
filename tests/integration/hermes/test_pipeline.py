"""Hermes end to end over real protocols: SES-shaped notifications on a moto SQS queue (and
SMTP), EditEnvironments in the strict Kubernetes API emulator, commands on the environment's
input queue, results on its output queue / DLQ, replies in moto's SES outbox.

The operator's part (queues + status) is played by `OperatorStandIn`; the editor's part (take
the command, answer with a result) by the test itself.
"""

from __future__ import annotations

import asyncio
import base64
import email
import smtplib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiohttp
import boto3
import pytest

from tests.plugins.hermes import (
    FROM_ADDRESS,
    ROUTING_YAML,
    OperatorStandIn,
    corpus,
    ses_notification,
)
from webordinary.contracts.environment import ANNOTATION_WAKE
from webordinary.contracts.instruction import customer_words
from webordinary.contracts.messages import Command, Result, ResultStatus
from webordinary.devkit.aws import MotoServer
from webordinary.devkit.kubeapi import KubeAPI
from webordinary.hermes.app import Running, start
from webordinary.hermes.mail import parse_mail
from webordinary.hermes.settings import HermesSettings
from webordinary.hermes.threads import thread_id

NS = "webordinary"
PREVIEW = "https://preview.test"
BUCKET = "hermes-mail"
JOHN = "ameliastamps-website-john"


@dataclass
class Stack:
    running: Running
    operator: OperatorStandIn
    moto: MotoServer
    kube_url: str
    inbound_url: str
    sqs: Any
    s3: Any

    async def deliver(self, body: str) -> None:
        await asyncio.to_thread(self.sqs.send_message, QueueUrl=self.inbound_url, MessageBody=body)

    async def commands(self, environment: str, wait: float = 10.0) -> list[Command]:
        """Take every command from the environment's input queue (the editor's part)."""
        url = await wait_for(lambda: self.operator.provisioned.get(environment), wait)
        answer = await asyncio.to_thread(
            self.sqs.receive_message, QueueUrl=url["input"], MaxNumberOfMessages=10,
            WaitTimeSeconds=2,
        )
        found = []
        for message in answer.get("Messages", []):
            found.append(Command.model_validate_json(message["Body"]))
            await asyncio.to_thread(self.sqs.delete_message, QueueUrl=url["input"],
                                    ReceiptHandle=message["ReceiptHandle"])
        return found

    async def outbox(self) -> list[EmailMessage]:
        sent = await asyncio.to_thread(self.moto.sent_emails)
        return [
            email.message_from_string(m["raw_data"], policy=policy.default)  # type: ignore[misc]
            for m in sent if "raw_data" in m
        ]

    async def environment(self, name: str) -> dict[str, Any] | None:
        url = f"{self.kube_url}/apis/webordinary.dev/v1alpha1/namespaces/{NS}/editenvironments"
        async with aiohttp.ClientSession() as session, session.get(f"{url}/{name}") as response:
            return None if response.status == 404 else dict(await response.json())

    def counter(self, name: str, **labels: str) -> float:
        value = self.running.hermes.metrics.registry.get_sample_value(name, labels or None)
        return value or 0.0

    async def inbound_drained(self) -> None:
        async def empty() -> bool:
            attrs = (await asyncio.to_thread(
                self.sqs.get_queue_attributes, QueueUrl=self.inbound_url,
                AttributeNames=["ApproximateNumberOfMessages",
                                "ApproximateNumberOfMessagesNotVisible"],
            ))["Attributes"]
            return all(v == "0" for v in attrs.values())
        await wait_for(empty)


async def wait_for(predicate: Callable[[], Any], within: float = 10.0) -> Any:
    """Poll until predicate() (sync or async) is truthy; fail the test after `within` s."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"condition not met within {within}s")
        await asyncio.sleep(0.05)


def settings_for(moto: MotoServer, kube: KubeAPI, tmp_path: Path, **extra: Any) -> HermesSettings:
    routing = tmp_path / "routing.yaml"
    routing.write_text(ROUTING_YAML)
    values: dict[str, Any] = {
        "namespace": NS, "kube_api_url": kube.url, "aws_endpoint_url": moto.endpoint_url,
        "inbound_queue_url": None, "inbound_wait_seconds": 1, "s3_bucket": BUCKET,
        "from_address": FROM_ADDRESS, "preview_base_url": PREVIEW, "routing_file": routing,
        "queue_wait_seconds": 15, "metrics_host": "127.0.0.1",
        "metrics_port": 0, "journal_path": tmp_path / "journal.jsonl",
    }
    values.update(extra)
    return HermesSettings(**values)


@pytest.fixture
async def stack(moto: MotoServer, kube_api: KubeAPI, tmp_path: Path,
                request: pytest.FixtureRequest) -> AsyncIterator[Stack]:
    sqs = boto3.client("sqs", endpoint_url=moto.endpoint_url, region_name="us-east-1")
    s3 = boto3.client("s3", endpoint_url=moto.endpoint_url, region_name="us-east-1")
    ses = boto3.client("ses", endpoint_url=moto.endpoint_url, region_name="us-east-1")
    ses.verify_email_identity(EmailAddress=FROM_ADDRESS)
    s3.create_bucket(Bucket=BUCKET)
    inbound = sqs.create_queue(QueueName="hermes-inbound")["QueueUrl"]
    extra = getattr(request, "param", {})
    settings = settings_for(moto, kube_api, tmp_path, inbound_queue_url=inbound, **extra)
    running = await start(settings)
    operator = OperatorStandIn(kube_api.url, moto.endpoint_url, NS)
    task = asyncio.create_task(operator.run())
    try:
        yield Stack(running, operator, moto, kube_api.url, inbound, sqs, s3)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await running.close()


async def test_email_to_command_to_reply(stack: Stack) -> None:
    raw = corpus("gmail_new.eml")
    thread = thread_id(parse_mail(raw), scope=JOHN)
    await stack.deliver(ses_notification(raw, message_id="ses-gmail-1"))

    [command] = await stack.commands("ameliastamps-website-john")
    assert command.session_id == thread
    assert command.context.branch == f"thread-{thread}"
    words = customer_words(command.instruction)
    assert words.startswith("Hi,\n\nPlease change the phone number")
    assert command.instruction.startswith("The customer's request, from an email by "
                                          "john@ameliastamps.com")
    assert "John Smith | Amelia Stamps" not in command.instruction

    env = await stack.environment("ameliastamps-website-john")
    assert env is not None
    assert env["spec"]["sessions"] == [thread]
    assert (env["spec"]["clientId"], env["spec"]["projectId"], env["spec"]["userId"]) == (
        "ameliastamps", "website", "john")
    assert env["spec"]["repository"]["url"] == "https://github.com/ameliastamps/website.git"

    ack = (await wait_for(stack.outbox))[0]
    assert ack["X-Webordinary-Kind"] == "ack"
    link = f"{PREVIEW}/session/{thread}/"

    result = Result(command_id=command.command_id, session_id=thread,
                    status=ResultStatus.COMPLETED, summary="The phone number is updated.",
                    files_changed=["src/pages/contact.astro"], commit="0123456789abcdef")
    output = stack.operator.provisioned["ameliastamps-website-john"]["output"]
    await asyncio.to_thread(stack.sqs.send_message, QueueUrl=output,
                            MessageBody=result.model_dump_json(by_alias=True))
    mails = await wait_for(lambda: _with_kind(stack, "result-completed"))
    reply = mails[0]
    user_mid = "<CAJx8mK3p2Lr9vQ=Hn5_T0bq+Yw4zA@mail.gmail.com>"
    assert reply["In-Reply-To"] == user_mid
    assert reply["References"] == user_mid
    assert reply["Subject"] == "Re: Contact page phone number"
    assert reply["To"] == "john@ameliastamps.com"
    text = reply.get_body(("plain",)).get_content()
    html = reply.get_body(("html",)).get_content()
    assert link in text
    assert f'href="{link}"' in html
    assert "src/pages/contact.astro" in text
    assert "The phone number is updated." in text

    # the same result delivered again -> still one reply
    await asyncio.to_thread(stack.sqs.send_message, QueueUrl=output,
                            MessageBody=result.model_dump_json(by_alias=True))
    await wait_for(lambda: stack.counter("hermes_duplicates_total", kind="result") == 1)
    assert len(await _with_kind(stack, "result-completed")) == 1
    assert stack.counter("hermes_email_to_command_seconds_count") == 1
    assert stack.counter("hermes_email_to_reply_seconds_count") == 1


async def _with_kind(stack: Stack, kind: str) -> list[EmailMessage]:
    return [m for m in await stack.outbox() if m["X-Webordinary-Kind"] == kind]


async def test_duplicate_delivery_yields_one_command(stack: Stack) -> None:
    raw = corpus("mobile_iphone.eml")
    body = ses_notification(raw, message_id="ses-dup-1")
    await stack.deliver(body)
    await stack.deliver(body)  # SES at-least-once: the very same notification again
    await stack.deliver(ses_notification(raw, message_id="ses-dup-1", sns=False,
                                         encoding="UTF8"))
    await stack.inbound_drained()
    await wait_for(lambda: stack.counter("hermes_commands_sent_total") == 1)
    commands = await stack.commands("ameliastamps-website-john")
    await wait_for(lambda: stack.counter("hermes_duplicates_total", kind="command") == 2)
    commands += await stack.commands("ameliastamps-website-john", wait=1)
    assert len(commands) == 1
    assert "Closed on Dec 24" in customer_words(commands[0].instruction)
    assert len(await _with_kind(stack, "ack")) == 1


async def test_failed_dkim_creates_nothing_and_sends_nothing(stack: Stack) -> None:
    raw = corpus("forged_sender.eml")
    await stack.deliver(ses_notification(raw, message_id="ses-forged",
                                         verdicts={"dkim": "FAIL", "dmarc": "FAIL"}))
    await stack.inbound_drained()
    await wait_for(lambda: stack.counter("hermes_emails_rejected_total", reason="auth-failed"))
    assert await stack.environment("ameliastamps-website-john") is None
    assert await stack.outbox() == []
    assert stack.counter("hermes_commands_sent_total") == 0


async def test_raw_ses_notification_with_mail_in_s3_and_attachment(stack: Stack) -> None:
    raw = corpus("apple_mail.eml")
    await asyncio.to_thread(stack.s3.put_object, Bucket=BUCKET, Key="inbound/ses-apple",
                            Body=raw)
    await stack.deliver(ses_notification(None, message_id="ses-apple", sns=False,
                                         s3=(BUCKET, "inbound/ses-apple")))
    [command] = await stack.commands("ameliastamps-website-team")
    assert customer_words(command.instruction).startswith("Please add this photo of our team")
    [attachment] = command.attachments
    assert attachment.filename == "Team Foto Munchen.png"
    assert attachment.content_base64 is not None
    assert base64.b64decode(attachment.content_base64).startswith(b"\x89PNG")
    first = parse_mail(corpus("apple_mail_first.eml"))
    assert command.session_id == thread_id(first, scope="ameliastamps-website-team")


@pytest.mark.parametrize("stack", [{"inline_attachments_max_bytes": 10}], indirect=True)
async def test_big_attachments_go_to_s3(stack: Stack) -> None:
    await stack.deliver(ses_notification(corpus("outlook_mobile_inline_image.eml")))
    [command] = await stack.commands("ameliastamps-website-john")
    [attachment] = command.attachments
    assert attachment.content_base64 is None
    assert attachment.s3_uri is not None
    assert attachment.s3_uri.startswith(f"s3://{BUCKET}/attachments/ameliastamps-website-john/")
    key = attachment.s3_uri.removeprefix(f"s3://{BUCKET}/")
    stored = await asyncio.to_thread(stack.s3.get_object, Bucket=BUCKET, Key=key)
    assert stored["Body"].read().startswith(b"\xff\xd8")
    # Tagged for the environment's editor only (IAM: iam/editor-pod-identity.json).
    tagging = await asyncio.to_thread(stack.s3.get_object_tagging, Bucket=BUCKET, Key=key)
    assert {t["Key"]: t["Value"] for t in tagging["TagSet"]} == {
        "webordinary.dev/namespace": NS,
        "webordinary.dev/service-account": "ameliastamps-website-john-editor"}


# The DLQ sweep cadence (60 s in production) only sets how soon the reply goes out; the
# cadence itself is tested with a clock in tests/unit/hermes/test_results.py.
@pytest.mark.parametrize("stack", [{"results_dlq_interval_seconds": 1}], indirect=True)
async def test_dead_lettered_command_gets_a_failure_reply(stack: Stack) -> None:
    await stack.deliver(ses_notification(corpus("html_only.eml")))
    [command] = await stack.commands("ameliastamps-website-team")
    dlq = stack.operator.provisioned["ameliastamps-website-team"]["dlq"]
    await asyncio.to_thread(stack.sqs.send_message, QueueUrl=dlq,
                            MessageBody=command.model_dump_json(by_alias=True))
    [reply] = await wait_for(lambda: _with_kind(stack, "result-failed"))
    text = reply.get_body(("plain",)).get_content()
    assert "could not process your request" in text
    assert "What to try" in text
    assert reply["In-Reply-To"] == "<20261128160100.4F2A1@webmail.ameliastamps.com>"
    assert reply["Subject"] == "Re: \u00d6ffnungszeiten"


async def test_outlook_conversation_stays_in_one_session(stack: Stack) -> None:
    for index, name in enumerate(("outlook_new.eml", "outlook_reply_norefs.eml",
                                  "outlook_reply_original.eml")):
        await stack.deliver(ses_notification(corpus(name), message_id=f"ses-o-{index}"))
    await wait_for(lambda: stack.counter("hermes_commands_sent_total") == 3)
    commands = await stack.commands("ameliastamps-website-sarah")
    assert len({c.session_id for c in commands}) == 1
    env = await stack.environment("ameliastamps-website-sarah")
    assert env is not None
    assert env["spec"]["sessions"] == [commands[0].session_id]


async def test_concurrent_sessions_of_one_user_are_all_recorded(stack: Stack) -> None:
    """Two new threads at once: both append to spec.sessions; the stale write is retried."""
    for index, name in enumerate(("gmail_new.eml", "mobile_iphone.eml", "forwarded.eml")):
        await stack.deliver(ses_notification(corpus(name), message_id=f"ses-c-{index}"))
    await wait_for(lambda: stack.counter("hermes_commands_sent_total") == 3)
    env = await stack.environment("ameliastamps-website-john")
    assert env is not None
    expected = {thread_id(parse_mail(corpus(n)), scope=JOHN)
                for n in ("gmail_new.eml", "mobile_iphone.eml", "forwarded.eml")}
    assert set(env["spec"]["sessions"]) == expected


async def test_unknown_sender_gets_one_polite_reply_per_hour(stack: Stack) -> None:
    raw = corpus("unknown_sender.eml")
    await stack.deliver(ses_notification(raw, message_id="ses-u-1"))
    await stack.deliver(ses_notification(raw.replace(b"<abc123@", b"<abc124@"),
                                         message_id="ses-u-2"))
    await stack.inbound_drained()
    await wait_for(lambda: stack.counter("hermes_emails_rejected_total",
                                         reason="unknown-sender") == 2)
    replies = await _with_kind(stack, "reject-unknown-sender")
    assert len(replies) == 1
    assert replies[0]["To"] == "someone@example.org"
    assert await stack.environment("ameliastamps-website-john") is None


@pytest.mark.parametrize("stack", [{"smtp_enabled": True, "smtp_port": 0}], indirect=True)
async def test_smtp_listener_feeds_the_same_pipeline(stack: Stack) -> None:
    port = stack.running.smtp_port
    assert port
    raw = corpus("gmail_new.eml")

    def send() -> dict[str, Any]:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            return client.sendmail("john@ameliastamps.com", ["website@edit.webordinary.dev"],
                                   raw)

    assert await asyncio.to_thread(send) == {}
    [command] = await stack.commands("ameliastamps-website-john")
    assert command.session_id == thread_id(parse_mail(raw), scope=JOHN)
    assert stack.counter("hermes_emails_received_total", source="smtp") == 1

    def forged() -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.sendmail("someone@evil.example", ["website@edit.webordinary.dev"],
                            corpus("mobile_iphone.eml"))

    await asyncio.to_thread(forged)  # envelope sender not aligned with From: local policy fails
    assert stack.counter("hermes_emails_rejected_total", reason="auth-failed") == 1
    assert stack.counter("hermes_commands_sent_total") == 1


async def test_sleeping_environment_is_asked_to_wake(stack: Stack) -> None:
    stack.operator.phase = "Sleeping"
    await stack.deliver(ses_notification(corpus("gmail_new.eml"), message_id="ses-w-1"))
    await stack.commands("ameliastamps-website-john")
    await stack.deliver(ses_notification(corpus("gmail_reply.eml"), message_id="ses-w-2"))
    await wait_for(lambda: stack.counter("hermes_commands_sent_total") == 2)
    env = await stack.environment("ameliastamps-website-john")
    assert env is not None
    assert ANNOTATION_WAKE in env["metadata"].get("annotations", {})
    assert len(env["spec"]["sessions"]) == 1  # the reply joined the first session


async def test_metrics_endpoint(stack: Stack) -> None:
    port = stack.running.metrics_port
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
            assert response.status == 200
            assert "hermes_emails_received_total" in await response.text()
        async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
            assert response.status == 200


@pytest.mark.parametrize("domain", ["email.amazonses.com", "eu-west-1.amazonses.com"])
async def test_outlook_reply_to_the_ses_message_id_joins_the_session(stack: Stack,
                                                                      domain: str) -> None:
    """SES replaces the Message-ID of what Hermes sends by `<{MessageId}@{SES domain}>`; an
    Outlook reply that carries only In-Reply-To with that id stays in the session."""
    await stack.deliver(ses_notification(corpus("gmail_new.eml"), message_id="ses-first"))
    [first] = await stack.commands(JOHN)
    sent = await wait_for(lambda: [m for m in stack.moto.sent_emails()
                                   if "X-Webordinary-Kind: ack" in m.get("raw_data", "")])
    ses_id = sent[0]["id"]  # what SendRawEmail returned (moto keeps it with the mail)
    reply = (
        "From: John Smith <john@ameliastamps.com>\r\nTo: website@edit.webordinary.dev\r\n"
        "Subject: RE: Contact page phone number\r\n"
        "Message-ID: <AM0PR02MB9999@AM0PR02MB9999.eurprd02.prod.outlook.com>\r\n"
        f"In-Reply-To: <{ses_id}@{domain}>\r\n"
        "Thread-Index: AQHbQk9xAbCdEfGhIjKlMnOpQrStUv==\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nPlease make it bold as well.\r\n"
    ).encode()
    await stack.deliver(ses_notification(reply, message_id="ses-second"))
    [second] = await stack.commands(JOHN)
    assert second.session_id == first.session_id
    env = await stack.environment(JOHN)
    assert env is not None
    assert env["spec"]["sessions"] == [first.session_id]
