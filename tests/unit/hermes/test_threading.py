"""Conversations stay whole: SES-rewritten Message-IDs, same-thread mails in one SQS batch,
tenants that share a Message-ID, results that arrive on the wrong environment's queue, and
mail that cannot be handled (dead-lettered, answered where the sender is known)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from tests.plugins.hermes import FROM_ADDRESS, ROUTING_YAML, corpus, ses_notification
from tests.unit.hermes.test_service import (
    NOW,
    PASSING,
    FakeKube,
    FakeMailer,
    FakeQueues,
    kept_then_answered,
)
from webordinary.contracts.messages import Command, Result, ResultStatus
from webordinary.hermes.adapters.aws import QueueMessage
from webordinary.hermes.decisions import Inbound
from webordinary.hermes.service import Hermes
from webordinary.hermes.settings import HermesSettings
from webordinary.hermes.threads import mid_key, thread_id_of_key

JOHN = "John Smith <john@ameliastamps.com>"


def raw_mail(message_id: str, body: str = "Please make the header blue.", *,
             sender: str = JOHN, extra: str = "", subject: str = "Header") -> bytes:
    return (f"From: {sender}\r\nTo: website@edit.webordinary.dev\r\nSubject: {subject}\r\n"
            f"Message-ID: <{message_id}>\r\n{extra}Content-Type: text/plain; charset=utf-8\r\n"
            f"\r\n{body}\r\n").encode()


@pytest.fixture
def parts(tmp_path: Path) -> tuple[Hermes, FakeKube, FakeQueues, FakeMailer]:
    routing = tmp_path / "routing.yaml"
    routing.write_text(ROUTING_YAML)
    settings = HermesSettings(routing_file=routing, from_address=FROM_ADDRESS,
                              queue_wait_seconds=0.5, preview_base_url="https://p.test",
                              inbound_dlq_url="q://inbound-dlq")
    kube, queues, mailer = FakeKube(), FakeQueues(), FakeMailer()
    return Hermes(settings, kube=kube, queues=queues, mailer=mailer, clock=lambda: NOW), kube, \
        queues, mailer


def commands(queues: FakeQueues) -> list[Command]:
    return [Command.model_validate_json(body) for url, body in queues.sent if url == "q://input"]


@pytest.mark.parametrize("domain", ["email.amazonses.com", "eu-west-1.amazonses.com",
                                    "us-gov-west-1.AmazonSES.com"])
async def test_in_reply_to_only_the_ses_id_stays_in_the_session(parts: Any, domain: str) -> None:
    """SES puts `<{MessageId}@{SES domain}>` in place of our Message-ID; Outlook replies carry
    only In-Reply-To with that id (no References): the reply must join the session."""
    hermes, _, queues, mailer = parts
    first = raw_mail("start-1@ameliastamps.com")
    assert await hermes.handle_inbound(Inbound(raw=first, verdicts=PASSING, source="ses",
                                               delivery_id="d1")) == "command"
    [ack_id] = mailer.ids  # what SendRawEmail returned for the acknowledgement
    reply = raw_mail("reply-1@ameliastamps.com", "Also make it bold.",
                     extra=f"In-Reply-To: <{ack_id}@{domain}>\r\n",
                     subject="RE: Header")
    assert await hermes.handle_inbound(Inbound(raw=reply, verdicts=PASSING, source="ses",
                                               delivery_id="d2")) == "command"
    one, two = commands(queues)
    assert one.session_id == two.session_id
    await hermes.close()


async def test_a_reply_to_an_unknown_ses_id_starts_its_own_session(parts: Any) -> None:
    hermes, _, queues, _ = parts
    await hermes.handle_inbound(Inbound(raw=raw_mail("s@x.example"), verdicts=PASSING,
                                        source="ses", delivery_id="d1"))
    stranger = raw_mail("r@x.example", extra="In-Reply-To: <0100-someone-else@email.amazonses.com>"
                        "\r\n")
    await hermes.handle_inbound(Inbound(raw=stranger, verdicts=PASSING, source="ses",
                                        delivery_id="d2"))
    one, two = commands(queues)
    assert one.session_id != two.session_id
    await hermes.close()


@pytest.mark.parametrize("attempt", range(3))
async def test_two_mails_of_one_conversation_in_one_batch_never_split(parts: Any,
                                                                      attempt: int) -> None:
    """The first mail and an Outlook reply to it (Thread-Index, In-Reply-To, no References)
    arrive in one SQS batch: one session, commands in arrival order."""
    hermes, _, queues, _ = parts
    first = raw_mail(f"new-{attempt}@ameliastamps.com", "Make the header blue.")
    second = raw_mail(f"re-{attempt}@ameliastamps.com", "And the footer green.",
                      extra=f"In-Reply-To: <new-{attempt}@ameliastamps.com>\r\n"
                            "Thread-Index: AdtKfD4hnxwrPU5fYHGCk6S1xtfo+QAAobLD\r\n",
                      subject="RE: Header")
    batch = [
        QueueMessage(body=ses_notification(raw, message_id=f"ses-{i}"), receipt_handle=f"h{i}",
                     message_id=f"m{i}")
        for i, raw in enumerate((first, second))
    ]
    await hermes.handle_batch("q://inbound", batch)
    one, two = commands(queues)
    assert one.session_id == two.session_id
    assert "Make the header blue." in one.instruction
    assert "And the footer green." in two.instruction
    assert sorted(queues.deleted) == ["h0", "h1"]
    await hermes.close()


async def test_the_same_message_id_from_two_tenants_is_two_commands(parts: Any) -> None:
    """Command and journal keys are per environment: a Message-ID one tenant sent first cannot
    make another tenant's mail look like a duplicate."""
    hermes, _, queues, _ = parts
    for index, sender in enumerate(("John <john@ameliastamps.com>",
                                    "Sarah <sarah@ameliastamps.com>")):
        raw = raw_mail("shared-id@example.org", sender=sender)
        outcome = await hermes.handle_inbound(Inbound(raw=raw, verdicts=PASSING, source="ses",
                                                      delivery_id=f"d{index}"))
        assert outcome == "command"
    one, two = commands(queues)
    assert one.command_id != two.command_id
    assert one.session_id != two.session_id
    await hermes.close()


async def test_a_result_on_another_environments_queue_gets_no_reply(parts: Any) -> None:
    hermes, _, queues, mailer = parts
    await hermes.handle_inbound(Inbound(raw=corpus("gmail_new.eml"), verdicts=PASSING,
                                        source="ses", delivery_id="d1"))
    [command] = commands(queues)
    forged = Result(command_id=command.command_id, session_id=command.session_id,
                    status=ResultStatus.COMPLETED, summary="I am someone else's editor")
    sent = len(mailer.sent)
    assert await hermes.handle_result(forged.model_dump_json(by_alias=True), False,
                                      "ameliastamps-website-sarah")
    assert len(mailer.sent) == sent
    assert hermes.metrics.registry.get_sample_value("hermes_results_orphaned_total") == 1
    assert await hermes.handle_result(forged.model_dump_json(by_alias=True), False,
                                      "ameliastamps-website-john")
    assert mailer.sent[-1]["X-Webordinary-Kind"] == "result-completed"
    await hermes.close()


async def test_a_result_the_output_queue_redrove_to_the_dlq_is_relayed(parts: Any) -> None:
    hermes, _, queues, mailer = parts
    await hermes.handle_inbound(Inbound(raw=corpus("gmail_new.eml"), verdicts=PASSING,
                                        source="ses", delivery_id="d1"))
    [command] = commands(queues)
    result = Result(command_id=command.command_id, session_id=command.session_id,
                    status=ResultStatus.COMPLETED, summary="Blue it is.")
    assert await hermes.handle_result(result.model_dump_json(by_alias=True), True,
                                      "ameliastamps-website-john")
    assert mailer.sent[-1]["X-Webordinary-Kind"] == "result-completed"
    assert "Blue it is." in mailer.sent[-1].get_body(("plain",)).get_content()
    await hermes.close()


async def test_unparseable_in_time_is_dead_lettered_and_the_sender_told(parts: Any) -> None:
    """A mail whose parse breaks the time limit: the worker is replaced, the SQS message goes
    to the inbound DLQ with its cause, and a sender routing knows gets a reply."""
    hermes, _, queues, mailer = parts
    hermes.parser.timeout = 0.001
    body = ses_notification(raw_mail("slow@ameliastamps.com", "x" * 3_000_000))
    note = json.loads(json.loads(body)["Message"])
    note["mail"]["commonHeaders"] = {"from": [JOHN], "subject": "Header",
                                     "messageId": "<slow@ameliastamps.com>"}
    message = QueueMessage(body=json.dumps({"Type": "Notification",
                                            "Message": json.dumps(note)}),
                           receipt_handle="h", message_id="m1")
    assert await hermes.handle_sqs_notification(message) is True
    [dead] = [body for url, body in queues.sent if url == "q://inbound-dlq"]
    assert dead == message.body
    assert queues.attributes[-1]["cause"] == "timeout"
    [reply] = mailer.sent
    assert reply["To"] == "john@ameliastamps.com"
    assert reply["X-Webordinary-Kind"] == "reject-unreadable"
    assert reply["In-Reply-To"] == "<slow@ameliastamps.com>"
    assert commands(queues) == []
    dead_letters = hermes.metrics.registry.get_sample_value(
        "hermes_dead_letters_total", {"cause": "timeout"})
    assert dead_letters == 1
    # the pool recovered: the next mail parses
    hermes.parser.timeout = 5.0
    assert await hermes.handle_inbound(Inbound(raw=raw_mail("next@ameliastamps.com"),
                                               verdicts=PASSING, source="ses",
                                               delivery_id="d2")) == "command"
    await hermes.close()


async def test_a_stranger_s_unreadable_mail_is_dead_lettered_without_a_reply(parts: Any) -> None:
    hermes, _, queues, mailer = parts
    hermes.parser.timeout = 0.001
    raw = raw_mail("slow@evil.example", "x" * 3_000_000, sender="x@evil.example")
    outcome = await hermes.handle_inbound(Inbound(
        raw=raw, verdicts=PASSING, source="ses", delivery_id="d1",
        envelope_from="x@evil.example", header_from=["x@evil.example"]))
    assert outcome == "dead:timeout"
    assert mailer.sent == []
    assert queues.sent == []
    await hermes.close()


async def test_no_exception_leaves_the_inbound_handler(parts: Any) -> None:
    """A bug-like failure (not a Kubernetes/SQS error) while acting on a mail: the message is
    kept for another try, and on the last try the user hears back; nothing propagates."""
    hermes, kube, queues, mailer = parts
    kube.fail = RuntimeError("unexpected")
    reply = await kept_then_answered(hermes, mailer, ses_notification(
        raw_mail("boom@ameliastamps.com")), early=1)
    assert reply["X-Webordinary-Kind"] == "reject-unavailable"
    assert queues.attributes[-1]["cause"] == "crash"  # and it is in the inbound DLQ
    await hermes.close()


async def test_a_failing_reply_on_the_rejection_path_keeps_the_mail(parts: Any) -> None:
    """Sending the polite reply fails (SES down): the mail is kept for a retry, not lost, and
    the exception does not escape."""
    hermes, _, queues, mailer = parts
    mailer.fail = True
    stranger = raw_mail("who@example.org", sender="someone@example.org")
    message = QueueMessage(body=ses_notification(stranger), receipt_handle="h", message_id="m")
    assert await hermes.handle_sqs_notification(message) is False
    mailer.fail = False
    assert await hermes.handle_sqs_notification(message) is True
    assert mailer.sent[0]["X-Webordinary-Kind"] == "reject-unknown-sender"
    # still failing on the last attempt: dead-lettered with the cause, not kept forever
    mailer.fail = True
    other = raw_mail("who2@example.org", sender="other@example.org")
    last = QueueMessage(body=ses_notification(other), receipt_handle="h2", message_id="m2",
                        receive_count=6)
    assert await hermes.handle_sqs_notification(last) is True
    assert queues.attributes[-1]["cause"] == "reply-failed"
    await asyncio.sleep(0)
    await hermes.close()


async def test_answering_a_please_send_an_instruction_reply_stays_in_the_session(
    parts: Any,
) -> None:
    """An empty mail gets "send us an instruction"; the Outlook answer to that reply (only
    In-Reply-To: the SES id of our reply) lands in the session the empty mail would have."""
    hermes, _, queues, mailer = parts
    empty = raw_mail("empty-1@ameliastamps.com", "", extra="In-Reply-To: <x@y.example>\r\n",
                     subject="Re: Header")
    outcome = await hermes.handle_inbound(Inbound(raw=empty, verdicts=PASSING, source="ses",
                                                  delivery_id="d1"))
    assert outcome == "reply:empty-instruction"
    [reply_id] = mailer.ids
    answer = raw_mail("answer-1@ameliastamps.com", "Make the header blue.",
                      extra=f"In-Reply-To: <{reply_id}@email.amazonses.com>\r\n",
                      subject="RE: Header")
    assert await hermes.handle_inbound(Inbound(raw=answer, verdicts=PASSING, source="ses",
                                               delivery_id="d2")) == "command"
    [command] = commands(queues)
    empty_thread = thread_id_of_key(mid_key("x@y.example"), "ameliastamps-website-john")
    assert command.session_id == empty_thread
    await hermes.close()
