"""Service logic against in-memory fakes of Hermes' own adapter interfaces."""

from __future__ import annotations

import asyncio
import copy
import email
import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from email import policy
from pathlib import Path
from typing import Any

import pytest

from tests.plugins.hermes import FROM_ADDRESS, ROUTING_YAML, corpus
from webordinary.contracts.environment import ANNOTATION_ACTIVITY, ANNOTATION_WAKE
from webordinary.contracts.messages import Command, Result, ResultError, ResultStatus, Usage
from webordinary.hermes.adapters.aws import QueueMessage
from webordinary.hermes.auth import Verdict, Verdicts
from webordinary.hermes.decisions import Inbound
from webordinary.hermes.journal import Journal
from webordinary.hermes.service import Hermes, RetryLater
from webordinary.hermes.settings import HermesSettings
from webordinary.kube import Conflict, KubeError

PASSING = Verdicts(spf=Verdict.PASS, dkim=Verdict.PASS, dmarc=Verdict.PASS)
NOW = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)


class FakeKube:
    """In-memory EditEnvironments with resourceVersions; optional conflicts and a status hook."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.rv = 0
        self.conflicts = 0
        self.status: dict[str, Any] | None = {"phase": "Ready", "queues": {
            "input": "q://input", "output": "q://output", "dlq": "q://dlq"}}
        self.calls: list[str] = []
        self.fail: Exception | None = None

    def _bump(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        return copy.deepcopy(obj)

    async def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.calls.append("get")
        if self.fail:
            raise self.fail
        obj = self.objects.get(name)
        if obj is not None and self.status is not None:
            obj["status"] = copy.deepcopy(self.status)
        return copy.deepcopy(obj)

    async def create(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append("create")
        name = body["metadata"]["name"]
        if name in self.objects:
            raise Conflict(409, "AlreadyExists", name)
        self.objects[name] = copy.deepcopy(body)
        return self._bump(self.objects[name])

    async def json_patch(self, namespace: str, name: str, ops: list[dict[str, Any]]) -> Any:
        self.calls.append("json_patch")
        obj = self.objects[name]
        if self.conflicts:
            self.conflicts -= 1
            self._bump(obj)  # someone else wrote meanwhile
        for op in ops:
            if op["op"] == "test" and op["path"] == "/metadata/resourceVersion":
                if obj["metadata"]["resourceVersion"] != op["value"]:
                    raise Conflict(422, "Invalid", "test failed")
            elif op["op"] == "add" and op["path"] == "/spec/sessions/-":
                obj["spec"]["sessions"].append(op["value"])
        return self._bump(obj)

    async def merge_patch(self, namespace: str, name: str, patch: dict[str, Any]) -> Any:
        self.calls.append("merge_patch")
        obj = self.objects[name]
        obj["metadata"].setdefault("annotations", {}).update(patch["metadata"]["annotations"])
        return self._bump(obj)

    async def list(self, namespace: str) -> list[dict[str, Any]]:
        return [copy.deepcopy(o) for o in self.objects.values()]

    async def close(self) -> None:
        return None


class FakeQueues:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self.attributes: list[dict[str, str]] = []
        self.waiting: dict[str, list[QueueMessage]] = {}
        self.deleted: list[str] = []

    async def receive(self, url: str, max_messages: int = 10, wait_seconds: int = 0,
                      visibility_seconds: int | None = None) -> list[QueueMessage]:
        batch, self.waiting[url] = self.waiting.get(url, []), []
        if not batch:
            await asyncio.sleep(0.01)
        return batch

    async def delete(self, url: str, receipt_handle: str) -> None:
        self.deleted.append(receipt_handle)

    async def send(self, url: str, body: str, group_id: str | None = None,
                   dedup_id: str | None = None,
                   attributes: dict[str, str] | None = None) -> str:
        self.sent.append((url, body))
        self.attributes.append(attributes or {})
        return str(len(self.sent))


class FakeMailer:
    """Like SES (and moto): returns a fresh MessageId per mail; recipients see
    `<{MessageId}@email.amazonses.com>` as the Message-ID, not the one Hermes wrote."""

    def __init__(self) -> None:
        self.sent: list[email.message.EmailMessage] = []
        self.ids: list[str] = []
        self.fail = False

    async def send(self, raw: bytes, sender: str, recipients: list[str]) -> str:
        if self.fail:
            raise OSError("SES down")
        self.sent.append(email.message_from_bytes(raw, policy=policy.default))  # type: ignore[arg-type]
        self.ids.append(f"0100018c{len(self.ids):08x}-{uuid.uuid4()}-000000")
        return self.ids[-1]


@pytest.fixture
def parts(tmp_path: Path) -> tuple[Hermes, FakeKube, FakeQueues, FakeMailer]:
    routing = tmp_path / "routing.yaml"
    routing.write_text(ROUTING_YAML)
    settings = HermesSettings(routing_file=routing, from_address=FROM_ADDRESS,
                              queue_wait_seconds=0.5, preview_base_url="https://p.test",
                              journal_path=tmp_path / "journal.jsonl")
    kube, queues, mailer = FakeKube(), FakeQueues(), FakeMailer()
    hermes = Hermes(settings, kube=kube, queues=queues, mailer=mailer, clock=lambda: NOW)
    return hermes, kube, queues, mailer


def inbound(name: str, delivery: str = "d1") -> Inbound:
    return Inbound(raw=corpus(name), verdicts=PASSING, source="ses", delivery_id=delivery)


async def test_accept_creates_environment_and_sends_command(parts: Any) -> None:
    hermes, kube, queues, mailer = parts
    assert await hermes.handle_inbound(inbound("gmail_new.eml")) == "command"
    env = kube.objects["ameliastamps-website-john"]
    assert set(env["spec"]) == {"clientId", "projectId", "userId", "repository", "sessions"}
    [(url, body)] = queues.sent
    assert url == "q://input"
    command = Command.model_validate_json(body)
    assert command.session_id == env["spec"]["sessions"][0]
    assert [m["X-Webordinary-Kind"] for m in mailer.sent] == ["ack"]
    assert f"https://p.test/session/{command.session_id}/" in mailer.sent[0].get_body(
        ("plain",)).get_content()
    await hermes.close()


async def test_session_patch_retries_on_conflict(parts: Any) -> None:
    hermes, kube, _, _ = parts
    await hermes.handle_inbound(inbound("gmail_new.eml"))
    kube.conflicts = 2
    assert await hermes.handle_inbound(inbound("mobile_iphone.eml", "d2")) == "command"
    assert len(kube.objects["ameliastamps-website-john"]["spec"]["sessions"]) == 2
    assert kube.calls.count("json_patch") == 3
    await hermes.close()


async def test_endless_conflicts_mean_retry_later(parts: Any) -> None:
    hermes, kube, queues, _ = parts
    await hermes.handle_inbound(inbound("gmail_new.eml"))
    kube.conflicts = 100
    with pytest.raises(RetryLater, match="kept conflicting"):
        await hermes.handle_inbound(inbound("mobile_iphone.eml", "d2"))
    assert len(queues.sent) == 1
    await hermes.close()


async def test_sleeping_environment_gets_the_wake_annotation(parts: Any) -> None:
    hermes, kube, _, _ = parts
    kube.status = {"phase": "Sleeping", "queues": {"input": "q://input"}}
    await hermes.handle_inbound(inbound("gmail_new.eml"))
    annotations = kube.objects["ameliastamps-website-john"]["metadata"]["annotations"]
    assert annotations[ANNOTATION_WAKE] == "2026-11-28T15:00:00Z"
    await hermes.close()


async def test_no_input_queue_in_time_means_retry_later(parts: Any) -> None:
    hermes, kube, queues, mailer = parts
    kube.status = None
    with pytest.raises(RetryLater, match="no input queue"):
        await hermes.handle_inbound(inbound("gmail_new.eml"))
    assert queues.sent == []
    assert mailer.sent == []
    # once the operator publishes the queue, the same mail goes through
    kube.status = {"phase": "Ready", "queues": {"input": "q://input"}}
    assert await hermes.handle_inbound(inbound("gmail_new.eml")) == "command"
    await hermes.close()


async def test_api_errors_mean_retry_later(parts: Any) -> None:
    hermes, kube, _, _ = parts
    kube.fail = KubeError(503, "ServiceUnavailable", "etcd")
    with pytest.raises(RetryLater, match="503"):
        await hermes.handle_inbound(inbound("gmail_new.eml"))


async def test_sqs_notification_is_kept_for_redelivery_on_retry_later(parts: Any) -> None:
    from tests.plugins.hermes import ses_notification

    hermes, kube, _, _ = parts
    kube.status = None
    message = QueueMessage(body=ses_notification(corpus("gmail_new.eml")), receipt_handle="r",
                           message_id="m")
    assert await hermes.handle_sqs_notification(message) is False
    bad = QueueMessage(body="{not json", receipt_handle="r2", message_id="m2")
    assert await hermes.handle_sqs_notification(bad) is True  # unusable: removed, counted
    value = hermes.metrics.registry.get_sample_value(
        "hermes_emails_rejected_total", {"reason": "bad-notification"})
    assert value == 1


async def test_journal_survives_a_restart(parts: Any, tmp_path: Path) -> None:
    hermes, kube, queues, mailer = parts
    await hermes.handle_inbound(inbound("gmail_new.eml"))
    [(_, body)] = queues.sent
    command = Command.model_validate_json(body)
    again = Hermes(hermes.settings, kube=kube, queues=queues, mailer=mailer, clock=lambda: NOW)
    assert await again.handle_inbound(inbound("gmail_new.eml", "d-other")) == "duplicate:command"
    result = Result(command_id=command.command_id, session_id=command.session_id,
                    status=ResultStatus.FAILED,
                    error=ResultError(reason="BuildFailed", message="astro build failed"))
    assert await again.handle_result(result.model_dump_json(by_alias=True), False)
    reply = mailer.sent[-1]
    assert reply["X-Webordinary-Kind"] == "result-failed"
    assert "astro build failed" in reply.get_body(("plain",)).get_content()
    third = Hermes(hermes.settings, kube=kube, queues=queues, mailer=mailer, clock=lambda: NOW)
    assert await third.handle_result(result.model_dump_json(by_alias=True), False)
    assert len([m for m in mailer.sent if m["X-Webordinary-Kind"] == "result-failed"]) == 1
    # the id SES gave the reply joins the thread registry (an Outlook reply to it stays);
    # the header id Hermes wrote too (SMTP mode keeps it)
    ses_key = f"ameliastamps-website-john|mid:{mailer.ids[-1]}@amazonses.com"
    assert third.journal.threads[ses_key] == command.session_id
    key = f"ameliastamps-website-john|mid:{reply['Message-ID'].strip('<>')}"
    assert third.journal.threads[key] == command.session_id


async def test_reply_failure_keeps_the_result_for_later(parts: Any) -> None:
    hermes, _, queues, mailer = parts
    await hermes.handle_inbound(inbound("gmail_new.eml"))
    command = Command.model_validate_json(queues.sent[0][1])
    mailer.fail = True
    result = Result(command_id=command.command_id, session_id=command.session_id,
                    status=ResultStatus.COMPLETED)
    assert await hermes.handle_result(result.model_dump_json(by_alias=True), False) is False
    mailer.fail = False
    assert await hermes.handle_result(result.model_dump_json(by_alias=True), False) is True
    assert mailer.sent[-1]["X-Webordinary-Kind"] == "result-completed"


async def test_orphan_and_garbage_results_are_removed_and_counted(parts: Any) -> None:
    hermes, _, _, mailer = parts
    orphan = Result(command_id="cmd-x", session_id="abc", status=ResultStatus.COMPLETED)
    assert await hermes.handle_result(orphan.model_dump_json(by_alias=True), False)
    assert await hermes.handle_result(json.dumps({"nope": 1}), True)
    assert mailer.sent == []
    registry = hermes.metrics.registry
    assert registry.get_sample_value("hermes_results_orphaned_total") == 1
    assert registry.get_sample_value("hermes_errors_total", {"stage": "result-invalid"}) == 1


async def test_attachments_too_big_without_s3_get_a_reply(parts: Any) -> None:
    hermes, kube, queues, mailer = parts
    hermes.settings = hermes.settings.model_copy(update={"inline_attachments_max_bytes": 1})
    assert await hermes.handle_inbound(inbound("apple_mail.eml")) == "reply:too-large"
    assert queues.sent == []
    assert kube.objects == {}
    assert mailer.sent[0]["X-Webordinary-Kind"] == "reject-too-large"


async def test_result_pollers_follow_the_environments(parts: Any) -> None:
    hermes, kube, queues, mailer = parts
    await hermes.handle_inbound(inbound("gmail_new.eml"))
    command = Command.model_validate_json(queues.sent[0][1])
    await hermes.refresh_watches()
    assert hermes.results.polling() == ["ameliastamps-website-john"]
    queues.waiting["q://dlq"] = [QueueMessage(body=queues.sent[0][1], receipt_handle="h1",
                                              message_id="1")]
    for _ in range(100):
        if queues.deleted:
            break
        await asyncio.sleep(0.01)
    assert queues.deleted == ["h1"]
    assert mailer.sent[-1]["X-Webordinary-Kind"] == "result-failed"
    assert command.command_id in mailer.sent[-1].get_body(("plain",)).get_content()
    kube.objects.clear()
    await hermes.refresh_watches()
    assert hermes.results.polling() == []
    await hermes.close()


def test_journal_skips_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    journal = Journal(path)
    journal.record_reply("result:cmd-1")
    journal.remember_threads({"mid:a@b": "0123456789abcdef"})
    with path.open("a") as handle:
        handle.write('{"t":"reply","ke')
    again = Journal(path)
    assert again.replied("result:cmd-1")
    assert again.threads == {"mid:a@b": "0123456789abcdef"}


async def kept_then_answered(hermes: Hermes, mailer: FakeMailer, body: str, early: int) -> Any:
    """A notification Hermes cannot act on yet: at receive `early` it stays queued (no mail);
    at the last receive (6) it is done with, and the user gets exactly one reply (returned)."""
    first = QueueMessage(body=body, receipt_handle="r", message_id="m", receive_count=early)
    assert await hermes.handle_sqs_notification(first) is False
    assert mailer.sent == []
    last = QueueMessage(body=body, receipt_handle="r", message_id="m", receive_count=6)
    assert await hermes.handle_sqs_notification(last) is True
    [reply] = mailer.sent
    return reply


async def test_last_attempt_answers_the_user_instead_of_retrying(parts: Any) -> None:
    from tests.plugins.hermes import ses_notification

    hermes, kube, queues, mailer = parts
    kube.status = None  # the operator never publishes the input queue
    reply = await kept_then_answered(hermes, mailer, ses_notification(corpus("gmail_new.eml")),
                                     early=2)
    assert reply["X-Webordinary-Kind"] == "reject-unavailable"
    assert "send your request again" in reply.get_body(("plain",)).get_content()
    assert queues.sent == []


def test_journal_drops_old_records_and_compacts(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    journal = Journal(path)
    journal.record_reply("result:old")
    journal.record_reply("result:new")
    lines = path.read_text().splitlines()
    old = json.loads(lines[0])
    old["at"] = "2026-01-01T00:00:00+00:00"
    path.write_text("\n".join([json.dumps(old), lines[1], "garbage"]) + "\n")
    again = Journal(path, now=datetime.now(UTC))
    assert not again.replied("result:old")
    assert again.replied("result:new")
    [kept] = path.read_text().splitlines()
    assert json.loads(kept)["key"] == "result:new"



async def test_routing_edits_apply_without_restart(parts: Any) -> None:
    hermes, _, queues, mailer = parts
    newcomer = corpus("mobile_iphone.eml").replace(b"john@ameliastamps.com", b"kim@example.org")
    mail = Inbound(raw=newcomer, verdicts=PASSING, source="ses", delivery_id="k1")
    assert await hermes.handle_inbound(mail) == "reply:unknown-sender"
    assert mailer.sent[0]["X-Webordinary-Kind"] == "reject-unknown-sender"
    path = hermes.settings.routing_file
    path.write_text(ROUTING_YAML.replace(
        "senders:\n", "senders:\n  - {address: kim@example.org, clientId: ameliastamps, "
        "userId: kim}\n", 1))
    os.utime(path, ns=(1, 2 * 10**18))  # a new mtime even on coarse clocks
    assert await hermes.handle_inbound(mail.model_copy(update={"delivery_id": "k2"})) == "command"
    assert queues.sent
    await hermes.close()


async def test_usage_reaches_metrics_and_logs_but_not_the_reply(
        parts: Any, caplog: pytest.LogCaptureFixture) -> None:
    hermes, _, queues, mailer = parts
    await hermes.handle_inbound(inbound("gmail_new.eml"))
    command = Command.model_validate_json(queues.sent[0][1])
    result = Result(command_id=command.command_id, session_id=command.session_id,
                    status=ResultStatus.COMPLETED, summary="Made the header blue.",
                    usage=Usage(input_tokens=1200, output_tokens=300, cost_usd=0.0123))
    with caplog.at_level("INFO", logger="webordinary.hermes"):
        assert await hermes.handle_result(result.model_dump_json(by_alias=True), False)
        assert await hermes.handle_result(result.model_dump_json(by_alias=True), False)
    text = mailer.sent[-1].get_body(("plain",)).get_content()
    assert "1200" not in text
    assert "0.0123" not in text
    assert "token" not in text.lower()
    environment = "ameliastamps-website-john"
    registry = hermes.metrics.registry
    assert registry.get_sample_value("hermes_result_tokens_total",
                                     {"environment": environment, "direction": "input"}) == 1200
    assert registry.get_sample_value("hermes_result_tokens_total",
                                     {"environment": environment, "direction": "output"}) == 300
    assert registry.get_sample_value("hermes_result_cost_usd_total",
                                     {"environment": environment}) == pytest.approx(0.0123)
    assert "1200 input / 300 output tokens, US$0.0123" in caplog.text


async def test_commands_and_results_stamp_activity_rate_limited(tmp_path: Path) -> None:
    routing = tmp_path / "routing.yaml"
    routing.write_text(ROUTING_YAML)
    settings = HermesSettings(routing_file=routing, from_address=FROM_ADDRESS,
                              queue_wait_seconds=0.5, activity_interval_seconds=0.2)
    kube, queues, mailer = FakeKube(), FakeQueues(), FakeMailer()
    clock = [NOW]
    hermes = Hermes(settings, kube=kube, queues=queues, mailer=mailer, clock=lambda: clock[0])
    assert await hermes.handle_inbound(inbound("gmail_new.eml")) == "command"
    annotations = kube.objects["ameliastamps-website-john"]["metadata"]["annotations"]
    assert annotations[ANNOTATION_ACTIVITY] == "2026-11-28T15:00:00Z"
    # The result comes back at once: held back (one write per interval), then flushed.
    command = Command.model_validate_json(queues.sent[-1][1])
    clock[0] = NOW + timedelta(seconds=42)
    result = Result(command_id=command.command_id, session_id=command.session_id,
                    status=ResultStatus.COMPLETED, summary="done")
    writes = kube.calls.count("merge_patch")
    assert await hermes.handle_result(result.model_dump_json(by_alias=True), False)
    assert kube.calls.count("merge_patch") == writes
    await hermes.flush_activity()
    assert kube.calls.count("merge_patch") == writes, "not before the interval ends"
    await asyncio.sleep(0.25)
    await hermes.flush_activity()
    assert annotations[ANNOTATION_ACTIVITY] == "2026-11-28T15:00:42Z"
    await hermes.close()


async def test_a_failed_activity_stamp_loses_nothing_else(parts: Any) -> None:
    hermes, kube, queues, _ = parts
    original = kube.merge_patch

    async def broken(namespace: str, name: str, patch: dict[str, Any]) -> Any:
        if ANNOTATION_ACTIVITY in patch["metadata"]["annotations"]:
            raise KubeError(500, "InternalError", "etcd is sad")
        return await original(namespace, name, patch)

    kube.merge_patch = broken
    assert await hermes.handle_inbound(inbound("gmail_new.eml")) == "command"
    assert len(queues.sent) == 1
    assert hermes.metrics.registry.get_sample_value(
        "hermes_errors_total", {"stage": "activity"}) == 1
    await hermes.close()
