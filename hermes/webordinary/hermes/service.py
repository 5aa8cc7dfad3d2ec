"""The Hermes service: inbound mail -> command, results and DLQ entries -> reply mails.

Each handler reads parse -> observe -> plan -> apply -> report; the decisions are the pure
functions of the sibling modules, the I/O goes through the adapters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from webordinary.contracts.messages import Command, Result, ResultError, ResultStatus
from webordinary.hermes import environments as envs
from webordinary.hermes.adapters.aws import BlobStore, Mailer, QueueApi, QueueMessage
from webordinary.hermes.adapters.kube import Conflict, EnvironmentApi, KubeError
from webordinary.hermes.commands import attachment_key, build_command, split_attachments
from webordinary.hermes.decisions import (
    RATE_LIMITED_REASONS,
    Accept,
    Drop,
    EditPlan,
    Inbound,
    Limits,
    Reason,
    Reply,
    ReplyContext,
    command_id_for,
    decide,
)
from webordinary.hermes.journal import CommandRecord, Journal
from webordinary.hermes.mail import MailError, parse_mail
from webordinary.hermes.metrics import Metrics
from webordinary.hermes.notifications import NotificationError, parse_notification
from webordinary.hermes.ratelimit import ReplyBudget
from webordinary.hermes.replies import (
    OutgoingMail,
    ack_mail,
    dlq_mail,
    rejection_mail,
    render,
    result_mail,
)
from webordinary.hermes.routing import RoutingSource
from webordinary.hermes.settings import HermesSettings
from webordinary.hermes.threads import learn, mid_key, scoped

log = logging.getLogger(__name__)

PATCH_ATTEMPTS = 8


class RetryLater(Exception):
    """A transient failure: leave the mail for redelivery (SQS) or answer 451 (SMTP)."""


class Hermes:
    """The singleton service; adapters are injected so tests can use real or fake ones."""

    def __init__(
        self,
        settings: HermesSettings,
        kube: EnvironmentApi,
        queues: QueueApi,
        mailer: Mailer,
        blobs: BlobStore | None = None,
        routing: RoutingSource | None = None,
        journal: Journal | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.kube = kube
        self.queues = queues
        self.mailer = mailer
        self.blobs = blobs
        self.routing = routing or RoutingSource(settings.routing_file)
        self.journal = journal or Journal(
            settings.journal_path, timedelta(days=settings.journal_retention_days)
        )
        self.metrics = metrics or Metrics()
        self.clock = clock
        self.budget = ReplyBudget(settings.unknown_sender_replies_per_hour)
        self._locks: dict[str, asyncio.Lock] = {}
        self._pollers: dict[str, asyncio.Task[None]] = {}
        self.ready = False

    def limits(self) -> Limits:
        config = self.routing.get()
        own = {self.settings.from_address.lower(), *(p.address for p in config.projects)}
        return Limits(
            max_message_bytes=self.settings.max_message_bytes,
            max_attachments=self.settings.max_attachments,
            auth_policy=self.settings.auth_policy,
            own_addresses=frozenset(own),
        )

    async def handle_inbound(self, inbound: Inbound, last_attempt: bool = False) -> str:
        """One received mail, end to end. Returns what happened (for logs and tests).

        Raises RetryLater when the mail should be delivered again later; on the `last_attempt`
        the user gets a failure reply instead.
        """
        self.metrics.received.labels(inbound.source).inc()
        try:
            mail = parse_mail(inbound.raw)
        except MailError as exc:
            self.metrics.rejected.labels("unparseable").inc()
            log.warning("mail %s unparseable: %s", inbound.delivery_id, exc)
            return "drop:unparseable"
        decision = decide(inbound, self.routing.get(), self.limits(), self.journal.threads, mail)
        if isinstance(decision, Drop):
            self.metrics.rejected.labels(decision.reason).inc()
            log.info("mail %s from %s dropped: %s %s", inbound.delivery_id, mail.from_address,
                     decision.reason, decision.details)
            return f"drop:{decision.reason}"
        if isinstance(decision, Reply):
            key = f"reject:{command_id_for(mail, inbound.delivery_id)}"
            return await self._reject(decision, key)
        assert isinstance(decision, Accept)
        plan = decision.plan
        lock = self._locks.setdefault(plan.command_id, asyncio.Lock())
        try:
            async with lock:
                try:
                    return await self._accept(plan)
                except RetryLater as exc:
                    if not last_attempt:
                        raise
                    log.error("giving up on %s: %s", plan.command_id, exc)
                    reply = Reply(Reason.UNAVAILABLE, plan.reply, str(exc), plan.thread_id)
                    return await self._reject(reply, f"reject:{plan.command_id}")
        finally:
            if not lock.locked():
                self._locks.pop(plan.command_id, None)

    async def _reject(self, decision: Reply, key: str) -> str:
        self.metrics.rejected.labels(decision.reason.value).inc()
        if self.journal.replied(key):
            self.metrics.duplicates.labels("rejection").inc()
            return f"duplicate:{decision.reason.value}"
        if decision.reason in RATE_LIMITED_REASONS and not self.budget.allow(
            decision.reply.to, time.monotonic()
        ):
            log.info("no reply to %s (%s): hourly budget used", decision.reply.to, decision.reason)
            return f"silenced:{decision.reason.value}"
        mail = rejection_mail(decision.reply, decision.reason, key.split(":", 1)[1],
                              self.settings.from_address, self.settings.from_name, decision.detail)
        await self._send_mail(mail, decision.thread_id)
        self.journal.record_reply(key)
        return f"reply:{decision.reason.value}"

    async def _accept(self, plan: EditPlan) -> str:
        if self.journal.command(plan.command_id) is not None:
            self.metrics.duplicates.labels("command").inc()
            log.info("command %s already queued: duplicate delivery", plan.command_id)
            return "duplicate:command"
        now = self.clock()
        inline, big = split_attachments(
            plan.attachments, self.settings.inline_attachments_max_bytes
        )
        blobs, bucket = self.blobs, self.settings.s3_bucket
        if big and (blobs is None or not bucket):
            return await self._reject(
                Reply(Reason.TOO_LARGE, plan.reply, "attachments", plan.thread_id),
                f"reject:{plan.command_id}",
            )
        queue = await self.ensure_environment(plan)
        stored: list[tuple[Any, str]] = []
        for item in big:
            assert blobs is not None
            assert bucket
            key = attachment_key(self.settings.s3_attachments_prefix, plan, item)
            stored.append((item, await blobs.put(bucket, key, item.data, item.content_type)))
        command = build_command(plan, inline, stored, now)
        body = command.model_dump_json(by_alias=True, exclude_none=True)
        await self.queues.send(queue, body, group_id=plan.thread_id, dedup_id=plan.command_id)
        self.journal.remember_threads(learn(plan.thread_keys, plan.thread_id, plan.environment))
        self.journal.record_command(
            CommandRecord(
                command_id=plan.command_id, thread_id=plan.thread_id,
                environment=plan.environment, reply=plan.reply, received_at=plan.received_at,
                queued_at=self.clock(),
            )
        )
        self.metrics.commands.inc()
        if plan.received_at is not None:
            self.metrics.email_to_command.observe(
                max(0.0, (self.clock() - plan.received_at).total_seconds())
            )
        log.info("command %s queued for %s session %s", plan.command_id, plan.environment,
                 plan.thread_id)
        if self.settings.ack_enabled and not self.journal.replied(f"ack:{plan.command_id}"):
            ack = ack_mail(plan.reply, plan.command_id, plan.thread_id,
                           self.settings.preview_base_url, self.settings.from_address,
                           self.settings.from_name)
            try:
                await self._send_mail(ack, plan.thread_id, plan.environment)
                self.journal.record_reply(f"ack:{plan.command_id}")
            except Exception:  # the command is queued; a lost ack is not worth a retry loop
                self.metrics.errors.labels("ack").inc()
                log.exception("acknowledgement for %s not sent", plan.command_id)
        return "command"

    async def ensure_environment(self, plan: EditPlan) -> str:
        """Get or create the environment, add the session, wake it, wait for its input queue."""
        ns, name = self.settings.namespace, plan.environment
        deadline = time.monotonic() + self.settings.queue_wait_seconds
        delay = 0.05
        woke = False
        attempts = 0
        while True:
            try:
                obj = await self.kube.get(ns, name)
                if obj is None:
                    body = envs.new_environment(name, ns, plan.route, plan.thread_id)
                    try:
                        obj = await self.kube.create(ns, body)
                        log.info("environment %s/%s created", ns, name)
                    except Conflict:
                        continue  # someone created it meanwhile: read it
                elif envs.is_terminating(obj):
                    obj = None  # wait until it is gone, then create it anew
                else:
                    ops = envs.session_patch(obj, plan.thread_id)
                    if ops is not None:
                        try:
                            obj = await self.kube.json_patch(ns, name, ops)
                        except Conflict:
                            attempts += 1
                            if attempts > PATCH_ATTEMPTS:
                                msg = f"{name}: sessions patch kept conflicting"
                                raise RetryLater(msg) from None
                            continue
                    if envs.needs_wake(obj) and not woke:
                        obj = await self.kube.merge_patch(ns, name, envs.wake_patch(self.clock()))
                        woke = True
                        log.info("environment %s/%s asked to wake", ns, name)
            except KubeError as exc:
                self.metrics.errors.labels("kube").inc()
                raise RetryLater(f"Kubernetes API: {exc}") from exc
            except (OSError, TimeoutError) as exc:
                self.metrics.errors.labels("kube").inc()
                raise RetryLater(f"Kubernetes API unreachable: {exc}") from exc
            if obj is not None:
                url = envs.queue_url(obj, "input")
                if url:
                    self._watch(name, obj)
                    return url
            if time.monotonic() >= deadline:
                raise RetryLater(f"environment {name} has no input queue after "
                                 f"{self.settings.queue_wait_seconds:.0f}s")
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 2.0)

    async def _send_mail(self, mail: OutgoingMail, thread_id: str, scope: str = "") -> None:
        raw = render(mail, self.clock())
        await self.mailer.send(raw, self.settings.from_address, [mail.to])
        if thread_id and scope:  # a reply to our reply stays in the session
            self.journal.remember_threads({scoped(mid_key(mail.message_id), scope): thread_id})
        self.metrics.replies.labels(mail.kind).inc()

    async def handle_sqs_notification(self, message: QueueMessage) -> bool:
        """One inbound SQS message; True when it may be deleted (done, or never actionable)."""
        try:
            note = parse_notification(message.body)
        except NotificationError as exc:
            self.metrics.rejected.labels("bad-notification").inc()
            log.error("inbound message %s is not usable, removed: %s", message.message_id, exc)
            return True
        if note is None:
            return True
        raw = note.content
        if raw is None:
            assert note.s3 is not None
            if self.blobs is None:
                log.error("mail %s is in S3 but no S3 access is configured", note.ses_message_id)
                return False
            try:
                raw = await self.blobs.get(note.s3.bucket, note.s3.key)
            except Exception as exc:
                self.metrics.errors.labels("s3").inc()
                log.warning("mail %s not readable from S3 yet: %s", note.ses_message_id, exc)
                return False
        inbound = Inbound(
            raw=raw, verdicts=note.verdicts, source="ses", delivery_id=note.ses_message_id,
            recipients=note.recipients, envelope_from=note.envelope_from,
            received_at=note.received_at,
        )
        last = message.receive_count >= self.settings.inbound_max_receives
        try:
            outcome = await self.handle_inbound(inbound, last_attempt=last)
        except RetryLater as exc:
            log.warning("mail %s postponed: %s", note.ses_message_id, exc)
            return False
        log.debug("mail %s: %s", note.ses_message_id, outcome)
        return True

    async def inbound_loop(self, stop: asyncio.Event) -> None:
        url = self.settings.inbound_queue_url
        assert url
        while not stop.is_set():
            try:
                batch = await self.queues.receive(
                    url, 10, self.settings.inbound_wait_seconds,
                    self.settings.inbound_visibility_seconds,
                )
            except Exception:
                self.metrics.errors.labels("sqs").inc()
                log.exception("inbound queue receive failed")
                await _sleep_or_stop(stop, 2.0)
                continue
            results = await asyncio.gather(
                *(self._inbound_one(url, message) for message in batch), return_exceptions=True
            )
            for message, result in zip(batch, results, strict=True):
                if isinstance(result, BaseException):
                    self.metrics.errors.labels("inbound").inc()
                    log.error("inbound %s failed: %r", message.message_id, result)

    async def _inbound_one(self, url: str, message: QueueMessage) -> None:
        if await self.handle_sqs_notification(message):
            await self.queues.delete(url, message.receipt_handle)

    async def handle_result(self, body: str, from_dlq: bool, environment: str = "") -> bool:
        """A Result (output queue) or a Command (DLQ): reply once. True when it may be deleted."""
        try:
            if from_dlq:
                command = Command.model_validate_json(body)
                result = Result(
                    command_id=command.command_id, session_id=command.session_id,
                    status=ResultStatus.FAILED, environment=environment or None,
                    error=ResultError(reason="DeadLettered",
                                      message="the editor could not process it"),
                )
            else:
                result = Result.model_validate_json(body)
        except ValidationError as exc:
            self.metrics.errors.labels("result-invalid").inc()
            log.error("unreadable %s message on %s removed: %s",
                      "DLQ" if from_dlq else "result", environment, exc.errors()[:2])
            return True
        key = f"result:{result.command_id}"
        if self.journal.replied(key):
            self.metrics.duplicates.labels("result").inc()
            return True
        record = self.journal.command(result.command_id)
        if record is None:
            self.metrics.orphans.inc()
            log.error("result for unknown command %s (session %s, %s): no reply possible",
                      result.command_id, result.session_id, environment)
            return True
        base, sender, name = (self.settings.preview_base_url, self.settings.from_address,
                              self.settings.from_name)
        if from_dlq:
            mail = dlq_mail(record.reply, result.command_id, record.thread_id, base, sender, name)
        else:
            mail = result_mail(record.reply, result, record.thread_id, base, sender, name)
        try:
            await self._send_mail(mail, record.thread_id, record.environment)
        except Exception as exc:
            self.metrics.errors.labels("reply").inc()
            log.warning("reply for %s not sent yet: %s", result.command_id, exc)
            return False
        self.journal.record_reply(key)
        if record.received_at is not None:
            self.metrics.email_to_reply.observe(
                max(0.0, (self.clock() - record.received_at).total_seconds())
            )
        return True

    def _watch(self, environment: str, obj: dict[str, Any]) -> None:
        """Make sure the environment's output queue and DLQ are being polled."""
        for role, from_dlq in (("output", False), ("dlq", True)):
            url = envs.queue_url(obj, role)
            if url and url not in self._pollers:
                self._pollers[url] = asyncio.create_task(
                    self._poll(url, from_dlq, environment), name=f"poll {role} {environment}"
                )
        self.metrics.watched_queues.set(len(self._pollers))

    async def _poll(self, url: str, from_dlq: bool, environment: str) -> None:
        failures = 0
        while True:
            try:
                batch = await self.queues.receive(url, 10, self.settings.results_wait_seconds)
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                self.metrics.errors.labels("sqs").inc()
                log.warning("polling %s failed (%d): %s", url, failures, exc)
                await asyncio.sleep(min(30.0, 0.5 * 2**failures))
                continue
            for message in batch:
                try:
                    if await self.handle_result(message.body, from_dlq, environment):
                        await self.queues.delete(url, message.receipt_handle)
                except Exception:  # keep polling; the message comes back after its timeout
                    self.metrics.errors.labels("result").inc()
                    log.exception("handling %s from %s failed", message.message_id, url)
            if not batch and self.settings.results_wait_seconds == 0:
                await asyncio.sleep(self.settings.results_interval_seconds)

    async def refresh_watches(self) -> None:
        """Poll every environment's output queue and DLQ; stop polling queues that vanished."""
        items = await self.kube.list(self.settings.namespace)
        wanted: set[str] = set()
        for obj in items:
            name = obj.get("metadata", {}).get("name", "")
            self._watch(name, obj)
            wanted.update(u for u in (envs.queue_url(obj, "output"), envs.queue_url(obj, "dlq"))
                          if u)
        for url in [u for u in self._pollers if u not in wanted]:
            self._pollers.pop(url).cancel()
        self.metrics.watched_queues.set(len(self._pollers))

    async def watch_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.refresh_watches()
                self.ready = True
            except Exception as exc:
                self.metrics.errors.labels("kube").inc()
                log.warning("listing environments failed: %s", exc)
            await _sleep_or_stop(stop, max(1.0, self.settings.results_interval_seconds * 5))

    async def run(self, stop: asyncio.Event) -> None:
        """Run every loop until `stop` is set."""
        tasks = [asyncio.create_task(self.watch_loop(stop), name="watch")]
        if self.settings.inbound_queue_url:
            tasks.append(asyncio.create_task(self.inbound_loop(stop), name="inbound"))
        try:
            await stop.wait()
        finally:
            await self.close(tasks)

    async def close(self, tasks: list[asyncio.Task[None]] | None = None) -> None:
        pending = [*(tasks or []), *self._pollers.values()]
        self._pollers.clear()
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


__all__ = ["Hermes", "ReplyContext", "RetryLater"]
