"""The Hermes service: inbound mail -> command, results and DLQ entries -> reply mails.

Each handler reads parse -> observe -> plan -> apply -> report; the decisions are the pure
functions of the sibling modules, the I/O goes through the adapters. Order of work for a mail:
the transport's authentication verdicts first (a forged mail costs nothing more), then the
parse in a worker process under time and memory limits, then `decide()` and the thread
registration in one step of the event loop (so two mails of one conversation can never start
two sessions), then the I/O, one mail at a time per conversation. No exception leaves a
handler: what cannot be handled is dead-lettered with its cause, and answered where the sender
is known.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from webordinary.contracts import ownership
from webordinary.contracts.activity import ActivityLimiter, activity_patch
from webordinary.contracts.messages import Command, Result, ResultError, ResultStatus
from webordinary.hermes import auth
from webordinary.hermes import environments as envs
from webordinary.hermes.adapters.aws import (
    BlobStore,
    Mailer,
    PermanentSendError,
    QueueApi,
    QueueMessage,
)
from webordinary.hermes.adapters.kube import EnvironmentApi
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
    reply_subject,
)
from webordinary.hermes.journal import CommandRecord, Journal
from webordinary.hermes.links import PreviewLinks
from webordinary.hermes.mail import ParsedMail
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
from webordinary.hermes.results import ResultPollers
from webordinary.hermes.routing import RoutingSource, known_sender
from webordinary.hermes.settings import HermesSettings
from webordinary.hermes.threads import learn, scoped, sent_keys
from webordinary.hermes.workers import ParseFailure, ParserPool, too_big
from webordinary.kube import Conflict, KubeError

log = logging.getLogger(__name__)

PATCH_ATTEMPTS = 8
DLQ_MAX_RECEIVES = 12
"""A DLQ entry whose reply still cannot be sent after this many tries is given up (logged)."""


class RetryLater(Exception):
    """A transient failure: leave the mail for redelivery (SQS) or answer 451 (SMTP)."""


@dataclass
class Staged:
    """An inbound SQS message after the work that may run in parallel (fetch, auth, parse)."""

    message: QueueMessage
    outcome: str | None = None
    """Final when set: nothing more to do but settle the message."""
    inbound: Inbound | None = None
    mail: ParsedMail | None = None
    keep: bool = False
    dead: str | None = None
    """The cause, when the message is poison and goes to the dead-letter queue."""


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
        parser: ParserPool | None = None,
    ) -> None:
        self.settings = settings
        self.kube = kube
        self.queues = queues
        self.mailer = mailer
        self.blobs = blobs
        self.routing = routing or RoutingSource(settings.routing_file)
        self.journal = journal or Journal(
            settings.journal_path, timedelta(days=settings.journal_retention_days),
            max_threads=settings.journal_max_thread_keys,
            max_records=settings.journal_max_records,
        )
        self.metrics = metrics or Metrics()
        self.clock = clock
        self.parser = parser or ParserPool(settings.parse_workers, settings.parse_timeout_seconds,
                                           settings.parse_memory_mib)
        self.budget = ReplyBudget(settings.unknown_sender_replies_per_hour)
        self.links = PreviewLinks(settings.preview_base_url, settings.preview_link_keys_dir,
                                  settings.preview_link_ttl_seconds)
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}
        self.results = ResultPollers(
            queues, self._handle_result_message, wait_seconds=settings.results_wait_seconds,
            visibility_seconds=settings.results_visibility_seconds,
            dlq_interval=settings.results_dlq_interval_seconds,
            grace=settings.results_grace_seconds,
            on_change=self.metrics.watched_queues.set,
            on_error=self.metrics.errors.labels("results-poll").inc,
        )
        self.activity = ActivityLimiter(settings.activity_interval_seconds)
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

    @contextlib.asynccontextmanager
    async def _serialised(self, key: str) -> AsyncIterator[None]:
        """One holder at a time per key, in arrival order (asyncio.Lock is FIFO)."""
        lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    async def handle_inbound(self, inbound: Inbound, last_attempt: bool = False) -> str:
        """One received mail, end to end. Returns what happened (for logs and tests).

        Raises RetryLater when the mail should be delivered again later (on the
        `last_attempt` the user gets a failure reply instead); nothing else escapes.
        """
        prepared = await self.prepare(inbound)
        if isinstance(prepared, str):
            return prepared
        return await self.dispatch(inbound, prepared, last_attempt)

    async def prepare(self, inbound: Inbound) -> ParsedMail | str:
        """Authenticate from the transport's verdicts, then parse in a worker (bounded).
        Returns the parsed mail, or the final outcome."""
        self.metrics.received.labels(inbound.source).inc()
        limits = self.limits()
        if inbound.envelope_from and inbound.envelope_from in limits.own_addresses:
            self.metrics.rejected.labels("own-address").inc()
            return "drop:own-address"
        verdict = auth.check(inbound.verdicts, limits.auth_policy)
        if not verdict.ok:  # before any parsing: a forged mail costs nothing more
            self.metrics.rejected.labels("auth-failed").inc()
            log.info("mail %s dropped before parsing: authentication %s",
                     inbound.delivery_id, verdict.reason)
            return "drop:auth-failed"
        headers_only = too_big(inbound.raw, limits.max_message_bytes)
        try:
            mail, cost = await self.parser.parse(inbound.raw, headers_only)
        except ParseFailure as exc:
            if exc.cost is not None:
                self.metrics.parse_seconds.observe(exc.cost.cpu_seconds)
            if exc.cause == "unreadable":
                self.metrics.rejected.labels("unparseable").inc()
                log.warning("mail %s unparseable: %s", inbound.delivery_id, exc.detail)
                return "drop:unparseable"
            return await self.unreadable(inbound, exc.cause, exc.detail)
        self.metrics.parse_seconds.observe(cost.cpu_seconds)
        return mail

    async def unreadable(self, inbound: Inbound, cause: str, detail: str) -> str:
        """A mail that cannot be handled (parse limits, a bug): answer a known sender, and
        tell the caller to dead-letter it."""
        self.metrics.rejected.labels("unreadable").inc()
        self.metrics.dead_letters.labels(cause).inc()
        log.error("mail %s from %s cannot be handled (%s): %s", inbound.delivery_id,
                  inbound.header_from[:1] or inbound.envelope_from, cause, detail)
        to = known_sender(self.routing.get(), inbound.header_from or [inbound.envelope_from],
                          inbound.envelope_from)
        if to:
            parent = inbound.header_message_id
            context = ReplyContext(to=to, subject=reply_subject(inbound.subject),
                                   message_id=parent, references=[parent] if parent else [])
            key = f"reject:{command_id_for(ParsedMail(message_id=parent), inbound.delivery_id, to)}"
            try:
                async with self._serialised(key):
                    await self._reject(Reply(Reason.UNREADABLE, context, cause), key)
            except Exception:
                self.metrics.errors.labels("reply").inc()
                log.exception("could not tell %s that their mail was unreadable", to)
        return f"dead:{cause}"

    async def dispatch(self, inbound: Inbound, mail: ParsedMail, last_attempt: bool = False) -> str:
        """Decide and act. The decision and the thread registration happen before the first
        await, so mails of one conversation are placed in the order they are dispatched."""
        try:
            decision = decide(inbound, self.routing.get(), self.limits(), self.journal.threads,
                              mail)
        except Exception as exc:  # a bug in pure code: this mail is poison, others go on
            log.exception("deciding on mail %s failed", inbound.delivery_id)
            return await self.unreadable(inbound, "crash", repr(exc))
        if isinstance(decision, Drop):
            self.metrics.rejected.labels(decision.reason).inc()
            log.info("mail %s from %s dropped: %s %s", inbound.delivery_id, mail.from_address,
                     decision.reason, decision.details)
            return f"drop:{decision.reason}"
        if isinstance(decision, Reply):
            scope = decision.reply.to
            key = f"reject:{command_id_for(mail, inbound.delivery_id, scope)}"
            try:
                async with self._serialised(key):
                    return await self._reject(decision, key)
            except Exception as exc:
                self.metrics.errors.labels("reply").inc()
                if last_attempt:  # tried long enough: dead-letter it with the cause
                    self.metrics.dead_letters.labels("reply-failed").inc()
                    log.error("reply to %s not sent, giving up: %s", scope, exc)
                    return "dead:reply-failed"
                log.warning("reply to %s not sent yet: %s", scope, exc)
                raise RetryLater(f"reply not sent: {exc}") from exc
        assert isinstance(decision, Accept)
        plan = decision.plan
        # Registration before any I/O: the next mail of this conversation finds the thread.
        self.journal.remember_threads(learn(plan.thread_keys, plan.thread_id, plan.environment))
        try:
            async with self._serialised(f"{plan.environment}|{plan.thread_id}"):
                try:
                    return await self._accept(plan)
                except RetryLater as exc:
                    if not last_attempt:
                        raise
                    log.error("giving up on %s: %s", plan.command_id, exc)
                    reply = Reply(Reason.UNAVAILABLE, plan.reply, str(exc), plan.thread_id,
                                  plan.environment)
                    return await self._reject(reply, f"reject:{plan.command_id}")
        except RetryLater:
            raise
        except Exception as exc:
            log.exception("mail %s (command %s) failed", inbound.delivery_id, plan.command_id)
            if not last_attempt:
                raise RetryLater(f"{type(exc).__name__}: {exc}") from exc
            self.metrics.dead_letters.labels("crash").inc()
            try:
                reply = Reply(Reason.UNAVAILABLE, plan.reply, "internal error", plan.thread_id,
                              plan.environment)
                await self._reject(reply, f"reject:{plan.command_id}")
            except Exception:
                log.exception("could not tell %s that their mail failed", plan.reply.to)
            return "dead:crash"

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
        try:
            await self._send_mail(mail, decision.thread_id, decision.environment)
        except Exception:
            if decision.reason in RATE_LIMITED_REASONS:
                self.budget.refund(decision.reply.to)  # not sent: the next try may send it
            raise
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
                Reply(Reason.TOO_LARGE, plan.reply, "attachments", plan.thread_id,
                      plan.environment),
                f"reject:{plan.command_id}",
            )
        queue = await self.ensure_environment(plan)
        stored: list[tuple[Any, str]] = []
        for item in big:
            assert blobs is not None
            assert bucket
            key = attachment_key(self.settings.s3_attachments_prefix, plan, item)
            stored.append((item, await blobs.put(
                bucket, key, item.data, item.content_type,
                tags=ownership.tags(self.settings.namespace, plan.environment))))
        command = build_command(plan, inline, stored, now)
        body = command.model_dump_json(by_alias=True, exclude_none=True)
        await self.queues.send(queue, body, group_id=plan.thread_id, dedup_id=plan.command_id)
        self.journal.record_command(
            CommandRecord(
                command_id=plan.command_id, thread_id=plan.thread_id,
                environment=plan.environment, reply=plan.reply, received_at=plan.received_at,
                queued_at=self.clock(),
            )
        )
        self.metrics.commands.inc()
        await self.stamp_activity(plan.environment)
        if plan.received_at is not None:
            self.metrics.email_to_command.observe(
                max(0.0, (self.clock() - plan.received_at).total_seconds())
            )
        log.info("command %s queued for %s session %s", plan.command_id, plan.environment,
                 plan.thread_id)
        if self.settings.ack_enabled and not self.journal.replied(f"ack:{plan.command_id}"):
            ack = ack_mail(plan.reply, plan.command_id, plan.thread_id,
                           self.settings.preview_base_url, self.settings.from_address,
                           self.settings.from_name, link=self.links.url(plan.thread_id))
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
                    self.results.touch(name, obj)
                    return url
            if time.monotonic() >= deadline:
                raise RetryLater(f"environment {name} has no input queue after "
                                 f"{self.settings.queue_wait_seconds:.0f}s")
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 2.0)

    async def _send_mail(self, mail: OutgoingMail, thread_id: str, scope: str = "") -> None:
        raw = render(mail, self.clock())
        provider_id = await self.mailer.send(raw, self.settings.from_address, [mail.to])
        if thread_id and scope:  # a reply to our reply stays in the session, SES or not
            self.journal.remember_threads(
                {scoped(key, scope): thread_id for key in sent_keys(mail.message_id, provider_id)}
            )
        self.metrics.replies.labels(mail.kind).inc()

    async def stage(self, message: QueueMessage) -> Staged:
        """Everything for one inbound SQS message that may run alongside the rest of its batch:
        read the notification, fetch the mail, authenticate, parse. Never raises."""
        staged = Staged(message)
        try:
            note = parse_notification(message.body)
        except NotificationError as exc:
            self.metrics.rejected.labels("bad-notification").inc()
            log.error("inbound message %s is not usable: %s", message.message_id, exc)
            staged.dead = "bad-notification"
            return staged
        except Exception as exc:
            log.exception("inbound message %s could not be read", message.message_id)
            staged.dead = f"crash: {exc!r}"[:200]
            return staged
        if note is None:
            staged.outcome = "ignored"
            return staged
        raw = note.content
        if raw is None:
            assert note.s3 is not None
            if self.blobs is None:
                log.error("mail %s is in S3 but no S3 access is configured", note.ses_message_id)
                staged.keep = True
                return staged
            try:
                raw = await self.blobs.get(note.s3.bucket, note.s3.key)
            except Exception as exc:
                self.metrics.errors.labels("s3").inc()
                log.warning("mail %s not readable from S3 yet: %s", note.ses_message_id, exc)
                staged.keep = True
                return staged
        inbound = Inbound(
            raw=raw, verdicts=note.verdicts, source="ses", delivery_id=note.ses_message_id,
            recipients=note.recipients, envelope_from=note.envelope_from,
            received_at=note.received_at, header_from=note.header_from, subject=note.subject,
            header_message_id=note.header_message_id,
        )
        staged.inbound = inbound
        try:
            prepared = await self.prepare(inbound)
        except Exception as exc:
            log.exception("mail %s could not be prepared", note.ses_message_id)
            staged.outcome = await self.unreadable(inbound, "crash", repr(exc))
        else:
            if isinstance(prepared, str):
                staged.outcome = prepared
            else:
                staged.mail = prepared
        if staged.outcome and staged.outcome.startswith("dead:"):
            staged.dead = staged.outcome[5:]
        return staged

    async def settle(self, staged: Staged) -> bool:
        """Dispatch a staged mail; True when the SQS message may be deleted. Never raises."""
        if staged.mail is not None and staged.inbound is not None:
            last = staged.message.receive_count >= self.settings.inbound_max_receives
            try:
                outcome = await self.dispatch(staged.inbound, staged.mail, last_attempt=last)
            except RetryLater as exc:
                log.warning("mail %s postponed: %s", staged.inbound.delivery_id, exc)
                return False
            except Exception as exc:  # dispatch does not raise; this is the last guard
                log.exception("mail %s failed", staged.inbound.delivery_id)
                outcome = f"dead:crash {exc!r}"[:200]
            staged.outcome = outcome
            if outcome.startswith("dead:"):
                staged.dead = outcome[5:]
            log.debug("mail %s: %s", staged.inbound.delivery_id, outcome)
        if staged.keep:
            return False
        if staged.dead is not None:
            return await self._dead_letter(staged.message, staged.dead)
        return True

    async def _dead_letter(self, message: QueueMessage, cause: str) -> bool:
        """Move a poison inbound message to the inbound DLQ with its cause (or, without one,
        log it in full). True when it may leave the inbound queue."""
        url = self.settings.inbound_dlq_url
        if not url:
            log.error("dead letter (no inbound DLQ configured) %s, cause %s: %.2000s",
                      message.message_id, cause, message.body)
            return True
        try:
            await self.queues.send(url, message.body,
                                   attributes={"cause": cause, "messageId": message.message_id})
        except Exception as exc:
            self.metrics.errors.labels("sqs").inc()
            log.warning("dead-lettering %s failed, it stays: %s", message.message_id, exc)
            return False
        log.error("inbound %s dead-lettered: %s", message.message_id, cause)
        return True

    async def handle_sqs_notification(self, message: QueueMessage) -> bool:
        """One inbound SQS message; True when it may be deleted. Never raises."""
        return await self.settle(await self.stage(message))

    async def handle_batch(self, url: str, batch: list[QueueMessage]) -> None:
        """A received batch: fetch and parse in parallel, then dispatch in arrival order,
        one mail at a time per conversation. Never raises."""
        staged = list(await asyncio.gather(*(self.stage(m) for m in batch)))
        epoch = datetime.min.replace(tzinfo=UTC)
        staged.sort(key=lambda s: (s.inbound.received_at or epoch) if s.inbound else epoch)
        # Tasks start in creation order and decide() runs before their first await.
        tasks = [asyncio.create_task(self.settle(s)) for s in staged]
        for item, task in zip(staged, tasks, strict=True):
            try:
                if await task:
                    await self.queues.delete(url, item.message.receipt_handle)
            except Exception as exc:
                self.metrics.errors.labels("inbound").inc()
                log.error("inbound %s not settled: %r", item.message.message_id, exc)

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
            await self.handle_batch(url, batch)

    async def _handle_result_message(self, message: QueueMessage, from_dlq: bool,
                                     environment: str) -> bool:
        if from_dlq and message.receive_count > DLQ_MAX_RECEIVES:
            self.metrics.dead_letters.labels("dlq-abandoned").inc()
            log.error("DLQ entry %s of %s given up after %d tries: %.2000s", message.message_id,
                      environment, message.receive_count, message.body)
            return True
        try:
            return await self.handle_result(message.body, from_dlq, environment)
        except Exception:
            self.metrics.errors.labels("result").inc()
            log.exception("handling %s from %s failed", message.message_id, environment)
            return False

    async def handle_result(self, body: str, from_dlq: bool, environment: str = "") -> bool:
        """A Result (output queue) or a Command (DLQ): reply once. True when it may be deleted.

        The DLQ also receives Results that could not be relayed (the output queue's redrive):
        those are answered as the result they are.
        """
        result: Result | None = None
        dead_command = False
        try:
            if from_dlq:
                try:
                    command = Command.model_validate_json(body)
                    dead_command = True
                    result = Result(
                        command_id=command.command_id, session_id=command.session_id,
                        status=ResultStatus.FAILED, environment=environment or None,
                        error=ResultError(reason="DeadLettered",
                                          message="the editor could not process it"),
                    )
                except ValidationError:
                    result = Result.model_validate_json(body)
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
        if record is None or (environment and record.environment != environment):
            self.metrics.orphans.inc()
            log.error("result for unknown command %s (session %s, %s): no reply possible",
                      result.command_id, result.session_id, environment)
            return True
        base, sender, name = (self.settings.preview_base_url, self.settings.from_address,
                              self.settings.from_name)
        link = self.links.url(record.thread_id)
        if dead_command:
            mail = dlq_mail(record.reply, result.command_id, record.thread_id, base, sender, name,
                            link=link)
        else:
            mail = result_mail(record.reply, result, record.thread_id, base, sender, name,
                               link=link)
        try:
            await self._send_mail(mail, record.thread_id, record.environment)
        except PermanentSendError as exc:
            self.metrics.errors.labels("reply-refused").inc()
            self.metrics.dead_letters.labels("reply-refused").inc()
            log.error("reply for %s to %s refused for good, not retried: %s",
                      result.command_id, record.reply.to, exc)
            self.journal.record_reply(key)
            return True
        except Exception as exc:
            self.metrics.errors.labels("reply").inc()
            log.warning("reply for %s not sent yet: %s", result.command_id, exc)
            return False
        self.journal.record_reply(key)
        self._count_usage(result, record.environment)
        await self.stamp_activity(record.environment)
        if record.received_at is not None:
            self.metrics.email_to_reply.observe(
                max(0.0, (self.clock() - record.received_at).total_seconds())
            )
        return True

    def _count_usage(self, result: Result, environment: str) -> None:
        """Tokens and cost reach the metrics and the log, never the customer's reply."""
        usage = result.usage
        self.metrics.result_tokens.labels(environment, "input").inc(usage.input_tokens)
        self.metrics.result_tokens.labels(environment, "output").inc(usage.output_tokens)
        self.metrics.result_cost_usd.labels(environment).inc(usage.cost_usd or 0.0)
        log.info("result %s of %s: %s, %d input / %d output tokens, US$%.4f",
                 result.command_id, environment, result.status.value, usage.input_tokens,
                 usage.output_tokens, usage.cost_usd or 0.0)

    async def stamp_activity(self, environment: str, at: datetime | None = None) -> None:
        """Tell the operator the environment is in use (rate-limited; best effort: a failed
        stamp costs at most an early sleep, never the command or the reply)."""
        if not environment:
            return
        when = self.activity.offer(environment, at or self.clock(), time.monotonic())
        if when is not None:
            await self._write_activity(environment, when)

    async def flush_activity(self) -> None:
        """Write the stamps the limiter held back whose interval has ended."""
        for environment, when in self.activity.due(time.monotonic()):
            await self._write_activity(environment, when)

    async def _write_activity(self, environment: str, when: datetime) -> None:
        try:
            await self.kube.merge_patch(self.settings.namespace, environment,
                                        activity_patch(when))
        except (KubeError, OSError, TimeoutError) as exc:
            self.metrics.errors.labels("activity").inc()
            log.warning("activity of %s not recorded: %s", environment, exc)

    async def refresh_watches(self) -> None:
        """Poll the output queues and DLQs of environments that can produce results."""
        items = await self.kube.list(self.settings.namespace)
        self.results.observe(items)

    async def watch_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.flush_activity()
                await self.refresh_watches()
                self.ready = True
            except Exception as exc:
                self.metrics.errors.labels("kube").inc()
                log.warning("listing environments failed: %s", exc)
            await _sleep_or_stop(stop, self.settings.environments_list_seconds)

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
        pending = list(tasks or [])
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.results.close()
        self.parser.close()


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


__all__ = ["Hermes", "ReplyContext", "RetryLater", "Staged"]
