"""SQS for the operator: create-or-adopt an environment's three queues, check them, delete them.

boto3 is synchronous; every call runs on a bounded thread pool so the event loop never blocks.
The wake poller's GetQueueAttributes and the CreateQueue calls of a creation burst go over the
light client (`sqsprobe`), same endpoint, credentials and IAM actions.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar
from urllib.parse import urlparse

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from webordinary.contracts import ownership
from webordinary.contracts.environment import GROUP, QueueUrls
from webordinary.contracts.environment import Queues as QueuesSpec
from webordinary.contracts.naming import QUEUE_PREFIX
from webordinary.operator.adapters.aws import BotoAdapter, client_config
from webordinary.operator.adapters.sqsprobe import NOT_FOUND, ProbeError, QueueProbe
from webordinary.operator.failures import AwsFailure
from webordinary.operator.settings import OperatorSettings

T = TypeVar("T")

TAG_NAMESPACE: Final = ownership.TAG_NAMESPACE
TAG_NAME: Final = f"{GROUP}/name"
TAG_UID: Final = f"{GROUP}/uid"
# The editor's ServiceAccount: EKS Pod Identity session tags are matched against it (IAM ABAC,
# helm/webordinary/iam/editor-pod-identity.json), so an editor reaches only its own queues.
TAG_SERVICE_ACCOUNT: Final = ownership.TAG_SERVICE_ACCOUNT
DLQ_RETENTION: Final = 1_209_600  # 14 days: a failed command must outlive the input queue's copy
ROLES_IN_ORDER: Final = ("dlq", "output", "input")  # the redrives need the DLQ first
REDRIVEN: Final = ("input", "output")
# Seconds a shared ListQueues answers "does it exist?" in a burst (our own creates are added
# to it as they happen). Each refresh pages through every queue (15 calls at 15,000 queues):
# every 2 s that was ~2,000 ListQueues calls while 5,000 environments were created.
BURST_LISTING_AGE: Final = 10.0

THROTTLED: Final = {
    "Throttling", "ThrottlingException", "RequestThrottled", "RequestThrottledException",
    "RequestLimitExceeded", "TooManyRequestsException", "SlowDown",
}
DELETED_RECENTLY: Final = {"AWS.SimpleQueueService.QueueDeletedRecently", "QueueDeletedRecently"}


class SqsFailure(AwsFailure):
    """An SQS problem with a condition reason; `transient` ones are retried with backoff."""


@dataclass(frozen=True)
class Owner:
    namespace: str
    name: str
    uid: str

    def tags(self) -> dict[str, str]:
        return {**ownership.tags(self.namespace, self.name), TAG_NAME: self.name,
                TAG_UID: self.uid}


@dataclass
class QueueReport:
    """What ensure_queues found and did."""

    urls: QueueUrls
    busy: bool | None = None
    created: list[str] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)


def desired_attributes(role: str, spec: QueuesSpec, dlq_arn: str | None) -> dict[str, str]:
    """SQS attributes per role; the input and output queues redrive to the DLQ after
    maxReceiveCount (a result Hermes cannot relay must not come back forever)."""
    attributes = {
        "VisibilityTimeout": str(spec.visibility_timeout),
        "MessageRetentionPeriod": str(
            DLQ_RETENTION if role == "dlq" else spec.message_retention
        ),
    }
    if role in REDRIVEN:
        if dlq_arn is None:
            raise ValueError(f"the {role} queue needs the DLQ's ARN")
        attributes["RedrivePolicy"] = json.dumps(
            {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": spec.max_receive_count},
            separators=(",", ":"),
        )
    return attributes


def differing(desired: dict[str, str], observed: dict[str, str]) -> dict[str, str]:
    """Attributes to set; RedrivePolicy compared as JSON (SQS may reformat it)."""
    diff: dict[str, str] = {}
    for key, value in desired.items():
        have = observed.get(key)
        if key == "RedrivePolicy" and have is not None:
            mine, theirs = json.loads(value), json.loads(have)
            if str(mine["deadLetterTargetArn"]) == str(theirs.get("deadLetterTargetArn")) and (
                int(mine["maxReceiveCount"]) == int(theirs.get("maxReceiveCount", -1))
            ):
                continue
        elif have == value:
            continue
        diff[key] = value
    return diff


def queue_arn(url: str, region: str) -> str:
    """arn:aws:sqs:{region}:{account}:{name} from a queue URL (AWS or moto form)."""
    parts = urlparse(url).path.strip("/").split("/")
    if len(parts) != 2:
        raise ValueError(f"not an SQS queue URL: {url!r}")
    account, name = parts
    partition = "aws-cn" if region.startswith("cn-") else (
        "aws-us-gov" if region.startswith("us-gov-") else "aws"
    )
    return f"arn:{partition}:sqs:{region}:{account}:{name}"


def ownership_problem(tags: dict[str, str], owner: Owner) -> str | None:
    """None when the queue is ours (same namespace/name; an older uid is adopted)."""
    if tags.get(TAG_NAMESPACE) == owner.namespace and tags.get(TAG_NAME) == owner.name:
        return None
    if not tags.get(TAG_NAME):
        return "exists without webordinary ownership tags"
    return f"belongs to {tags.get(TAG_NAMESPACE)}/{tags.get(TAG_NAME)}"


COUNTS: Final = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                 "ApproximateNumberOfMessagesDelayed")


def is_busy(attributes: dict[str, str]) -> bool:
    """Messages waiting, delayed or in flight (an editor holds a message while it works)."""
    return any(int(attributes.get(key, "0") or 0) > 0 for key in COUNTS)


def classify(error: Exception, action: str) -> SqsFailure:
    """Turn a botocore error into a condition reason; throttling and 5xx are transient."""
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        text = f"{action}: {code}: {error.response.get('Error', {}).get('Message', '')}"
        if code in THROTTLED:
            return SqsFailure("AWSThrottled", text, transient=True)
        if code in DELETED_RECENTLY:
            return SqsFailure("QueueDeletedRecently", text, transient=True, delay=61.0)
        if status >= 500:
            return SqsFailure("AWSUnavailable", text, transient=True)
        return SqsFailure("AWSError", text, transient=False)
    if isinstance(error, BotoCoreError):
        return SqsFailure("AWSUnreachable", f"{action}: {error}", transient=True)
    raise error


RETRIED: Final = frozenset({"AWSThrottled", "AWSUnreachable", "AWSUnavailable"})


def probe_failure(error: ProbeError, action: str) -> SqsFailure:
    """An answer of the light client as a condition reason (as `classify` does for boto3's)."""
    text = str(error)
    if error.code in THROTTLED:
        return SqsFailure("AWSThrottled", text, transient=True)
    if error.code in DELETED_RECENTLY:
        return SqsFailure("QueueDeletedRecently", text, transient=True, delay=61.0)
    if action == "CreateQueue" and error.code in ("QueueAlreadyExists", "QueueNameExists"):
        return SqsFailure("QueueRace", f"appeared while creating it: {text}", transient=True,
                          delay=1.0)
    if error.status == 0:
        return SqsFailure("AWSUnreachable", text, transient=True)
    if error.status >= 500:
        return SqsFailure("AWSUnavailable", text, transient=True)
    return SqsFailure("AWSError", text, transient=False)


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


class SqsAdapter(BotoAdapter):
    """The operator's SQS client (thread-safe boto3 client, bounded worker pool)."""

    def __init__(self, settings: OperatorSettings) -> None:
        session = boto3.session.Session()
        client = session.client("sqs", region_name=settings.aws_region,
                                endpoint_url=settings.sqs_endpoint_url,
                                config=client_config(settings))
        super().__init__(session, client, settings, classify)
        self.region = settings.aws_region
        # The wake poller's call, light (same endpoint and credentials as the client).
        self.probe = QueueProbe(self.client.meta.endpoint_url, self.client.meta.region_name,
                                self.session.get_credentials(),
                                connections=settings.aws_concurrency)
        self._listing: tuple[float, frozenset[str]] | None = None
        self._listing_lock = threading.Lock()
        self._created_since: set[str] = set()
        self._refresh_claimed = False  # a stale listing's refresh is someone's (listed)
        self.listing_max_age = settings.drift_interval_seconds / 2
        self.burst_threshold = settings.sqs_burst_threshold
        self.max_attempts = settings.aws_max_attempts
        self._creating = 0
        self._creating_lock = threading.Lock()
        self._started: deque[float] = deque()  # when recent creations began (monotonic)


    async def ensure_queues(
        self,
        names: dict[str, str],
        known: QueueUrls,
        spec: QueuesSpec,
        owner: Owner,
        *,
        light: bool = False,
        skip_input: bool = False,
    ) -> QueueReport:
        if not light and not (known.input or known.output or known.dlq):
            created = await self._create_in_burst(names, spec, owner)
            if created is not None:
                return created
        return await self._run(self.ensure_queues_sync, names, known, spec, owner, light,
                               skip_input)

    async def _create_in_burst(self, names: dict[str, str], spec: QueuesSpec,
                               owner: Owner) -> QueueReport | None:
        """Many environments at once, none of whose queues exist yet (the shared, seconds-old
        listing shows none): three CreateQueue calls without boto3's per-call machinery
        (~2.4 ms of CPU each through boto3 and a worker thread; a tenth of the operator's CPU
        per environment created). None: take the checked path (`ensure_queues_sync`)."""
        with self._creating_lock:
            self._creating += 1
            self._started.append(time.monotonic())
            burst = self._burst()
        try:
            if not burst:
                return None
            wanted = [names[role] for role in ROLES_IN_ORDER]
            found = self.existing_if_fresh(wanted, BURST_LISTING_AGE)
            if found is None:  # stale or being refreshed: listing is I/O, in a worker thread
                found = await self._run(self.existing, wanted, BURST_LISTING_AGE)
            if found:
                return None
            report = QueueReport(urls=QueueUrls(), busy=False)  # new queues hold no message
            urls: dict[str, str] = {}
            for role in ROLES_IN_ORDER:
                dlq_arn = queue_arn(urls["dlq"], self.region) if role in REDRIVEN else None
                answer = await self._lean("CreateQueue", {
                    "QueueName": names[role], "tags": owner.tags(),
                    "Attributes": desired_attributes(role, spec, dlq_arn)})
                urls[role] = str(answer["QueueUrl"])
                report.created.append(names[role])
                self._note_created(names[role])
            report.urls = QueueUrls(**urls)
            return report
        finally:
            with self._creating_lock:
                self._creating -= 1

    def _burst(self) -> bool:
        """Whether environments are being created many at once (the caller holds
        `_creating_lock`): `burst_threshold` creations in flight, or begun within the last
        BURST_LISTING_AGE seconds. Counting only those in flight missed most bursts: each
        environment's three CreateQueue calls take a few milliseconds, so with the operator
        busy a 5,000 burst rarely had eight in flight (836 of 5,000 environments took the
        checked path: a GetQueueUrl per queue and boto3's ~2.4 ms per call)."""
        if self.burst_threshold <= 0:
            return False
        horizon = time.monotonic() - BURST_LISTING_AGE
        while self._started and self._started[0] < horizon:
            self._started.popleft()
        return max(self._creating, len(self._started)) >= self.burst_threshold

    async def _lean(self, action: str, body: dict[str, Any]) -> dict[str, Any]:
        """One call over the probe's connections, retried like boto3's standard mode
        (throttling, 5xx, no answer; up to aws_max_attempts, jittered exponential backoff)."""
        attempt = 0
        while True:
            try:
                return await self.probe.call(action, body)
            except ProbeError as error:
                attempt += 1
                failure = probe_failure(error, action)
                if failure.reason not in RETRIED or attempt >= self.max_attempts:
                    raise failure from error
                await asyncio.sleep(random.random() * min(20.0, 2.0 ** attempt))

    def existing(self, wanted: Iterable[str], max_age: float | None = None) -> frozenset[str]:
        """Which of `wanted` exist, from one paged ListQueues of all webordinary queues shared by
        every environment (refreshed when older than `max_age`, by default `listing_max_age`
        seconds) plus the queues created since."""
        limit = self.listing_max_age if max_age is None else max_age
        with self._listing_lock:
            listed = self._fresh_listing(limit)
            if listed is None:
                started = time.monotonic()
                listed = self._list_names()
                self._listing = (started, listed)
                self._created_since.clear()
                self._refresh_claimed = False
            return self._present(wanted, listed)

    def existing_if_fresh(self, wanted: Iterable[str], max_age: float) -> frozenset[str] | None:
        """`existing` without a worker thread when the listing is fresh and no thread holds it
        (None: ask `existing`). In a creation burst each environment used to pay a thread hop
        (~0.5 ms of the event loop's CPU) for this set lookup."""
        if not self._listing_lock.acquire(blocking=False):
            return None
        try:
            listed = self._fresh_listing(max_age)
            return None if listed is None else self._present(wanted, listed)
        finally:
            self._listing_lock.release()

    def _fresh_listing(self, max_age: float) -> frozenset[str] | None:
        """The shared listing's names if it is younger than `max_age` (under `_listing_lock`)."""
        listing = self._listing
        if listing is None or time.monotonic() - listing[0] >= max_age:
            return None
        return listing[1]

    def _present(self, wanted: Iterable[str], listed: frozenset[str]) -> frozenset[str]:
        """Which of `wanted` the listing or the queues created since show (under the lock)."""
        return frozenset(name for name in wanted
                         if name in listed or name in self._created_since)

    async def keep_listing_fresh(self) -> None:
        """Refresh the shared listing a little before it turns stale, for as long as it runs.
        Drift ticks then find it fresh: after a creation burst every environment's first tick
        falls ~one drift interval after the burst's last refresh, when the listing had aged
        past `2 * listing_max_age`, and thousands of ticks each did a full check at once."""
        period = self.listing_max_age / 2
        while True:
            try:
                await self._run(self.existing, (), period)
            except AwsFailure as error:  # the next tick's own check covers it
                logging.getLogger(__name__).warning("queue listing refresh: %s", error)
            await asyncio.sleep(period / 2)

    def listed(self, names: Iterable[str]) -> bool | None:
        """Whether the shared listing shows all `names`; None when the caller should check
        for itself. Past `listing_max_age` the first caller gets None (its check refreshes the
        listing) and the others keep using it, up to twice that age: at thousands of drift
        ticks in a few seconds, one refresh, not a check per tick while it runs. Never waits
        (this runs on the event loop)."""
        listing = self._listing
        if listing is None:
            return None
        age = time.monotonic() - listing[0]
        if age >= 2 * self.listing_max_age:
            return None
        if age >= self.listing_max_age and not self._refresh_claimed:
            self._refresh_claimed = True
            return None
        created = self._created_since
        return all(name in listing[1] or name in created for name in names)

    def _list_names(self) -> frozenset[str]:
        names: set[str] = set()
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"QueueNamePrefix": f"{QUEUE_PREFIX}-", "MaxResults": 1000}
            if token:
                kwargs["NextToken"] = token
            page = self._call("ListQueues", **kwargs)
            names.update(url.rsplit("/", 1)[-1] for url in page.get("QueueUrls", []))
            token = page.get("NextToken")
            if not token:
                return frozenset(names)

    def _note_created(self, name: str) -> None:
        """Keep the shared listing true to our own creates, so that a reconcile re-run within
        the listing's age looks the queue up instead of creating it a second time (a set of
        its own: copying the listing per create was quadratic in a burst of thousands)."""
        with self._listing_lock:
            if self._listing is not None:
                self._created_since.add(name)

    async def delete_queues(self, names: dict[str, str], owner: Owner) -> list[str]:
        return await self._run(self.delete_queues_sync, names, owner)

    def ensure_queues_sync(
        self,
        names: dict[str, str],
        known: QueueUrls,
        spec: QueuesSpec,
        owner: Owner,
        light: bool = False,
        skip_input: bool = False,
    ) -> QueueReport:
        """Check known queues (one GetQueueAttributes each); create or adopt the rest.

        `light` (drift ticks): known output/DLQ queues that the shared listing still shows are
        taken as they are; only the input queue is read (its message counts are the activity
        signal). A queue missing from the listing gets the full check. `skip_input` (a sleeping
        environment, whose input queue the wake poller reads): the input queue is treated like
        the others.
        """
        missing = [role for role in ROLES_IN_ORDER if not getattr(known, role)]
        if not missing:
            return self._ensure(names, known, spec, owner, light, None, skip_input)
        with self._creating_lock:
            self._creating += 1
            burst = self._burst()
        try:
            # Many environments at once: one shared, seconds-old listing tells which queues
            # do not exist yet, sparing a GetQueueUrl per queue. Queues it shows still get the
            # full adopt-or-conflict check.
            absent = (
                frozenset(names[r] for r in missing)
                - self.existing([names[r] for r in missing], BURST_LISTING_AGE)
                if burst else None
            )
            return self._ensure(names, known, spec, owner, light, absent, skip_input)
        finally:
            with self._creating_lock:
                self._creating -= 1

    def _ensure(
        self,
        names: dict[str, str],
        known: QueueUrls,
        spec: QueuesSpec,
        owner: Owner,
        light: bool,
        absent: frozenset[str] | None,
        skip_input: bool = False,
    ) -> QueueReport:
        report = QueueReport(urls=QueueUrls())
        urls: dict[str, str] = {}
        listed = self.existing(names.values()) if light else frozenset()
        for role in ROLES_IN_ORDER:
            dlq_arn = queue_arn(urls["dlq"], self.region) if role in REDRIVEN else None
            desired = desired_attributes(role, spec, dlq_arn)
            url = getattr(known, role)
            if light and url and (role != "input" or skip_input) and names[role] in listed:
                urls[role] = url
                continue
            observed = self._attributes(url) if url else None
            if observed is None:
                url, observed = self._create_or_adopt(
                    role, names[role], desired, owner, report,
                    known_absent=absent is not None and names[role] in absent,
                )
            diff = differing(desired, observed)
            if diff:
                self._call("SetQueueAttributes", QueueUrl=url, Attributes=diff)
                report.updated.append(names[role])
            if role == "input":
                report.busy = is_busy(observed)
            urls[role] = url
        report.urls = QueueUrls(**urls)
        return report

    async def input_busy(self, url: str) -> bool | None:
        """One GetQueueAttributes: messages waiting, delayed or in flight (a job running)?
        None when the queue is gone (a reconcile recreates it)."""
        try:
            attributes = await self.probe.attributes(url, list(COUNTS))
        except ProbeError as error:
            raise probe_failure(error, "GetQueueAttributes") from error
        return None if attributes is None else is_busy(attributes)

    def delete_queues_sync(self, names: dict[str, str], owner: Owner) -> list[str]:
        """Delete the queues this environment owns; foreign or missing ones are left alone."""
        deleted: list[str] = []
        for role in ("input", "output", "dlq"):
            url = self._url(names[role])
            if url is None:
                continue
            tags = self._call("ListQueueTags", QueueUrl=url).get("Tags", {})
            if ownership_problem(tags, owner) is not None:
                continue
            try:
                self._call("DeleteQueue", QueueUrl=url)
            except SqsFailure as failure:
                if "NonExistentQueue" not in str(failure):
                    raise
            deleted.append(names[role])
        return deleted

    def _url(self, name: str) -> str | None:
        try:
            return str(self.client.get_queue_url(QueueName=name)["QueueUrl"])
        except ClientError as error:
            if _code(error) in NOT_FOUND:
                return None
            raise classify(error, "GetQueueUrl") from error
        except BotoCoreError as error:
            raise classify(error, "GetQueueUrl") from error

    def _attributes(self, url: str) -> dict[str, str] | None:
        try:
            result = self.client.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
        except ClientError as error:
            if _code(error) in NOT_FOUND:
                return None
            raise classify(error, "GetQueueAttributes") from error
        except BotoCoreError as error:
            raise classify(error, "GetQueueAttributes") from error
        return dict(result.get("Attributes", {}))

    def _create_or_adopt(
        self,
        role: str,
        name: str,
        desired: dict[str, str],
        owner: Owner,
        report: QueueReport,
        *,
        known_absent: bool = False,
    ) -> tuple[str, dict[str, str]]:
        """Adopt an existing queue tagged for this environment, else create it with tags.

        Looking before creating matters: CreateQueue on an existing queue may rewrite its tags,
        which would hide a foreign queue.
        """
        url = None if known_absent else self._url(name)
        if url is None:
            try:
                created = self._call(
                    "CreateQueue", QueueName=name, Attributes=desired, tags=owner.tags()
                )
            except SqsFailure as failure:
                if "QueueAlreadyExists" not in str(failure) and "QueueNameExists" not in str(
                    failure
                ):
                    raise
                raise SqsFailure("QueueRace", f"{name} appeared while creating it",
                                 transient=True, delay=1.0) from failure
            report.created.append(name)
            self._note_created(name)
            return str(created["QueueUrl"]), dict(desired)
        tags = self._call("ListQueueTags", QueueUrl=url).get("Tags", {})
        problem = ownership_problem(tags, owner)
        if problem is not None:
            raise SqsFailure(
                "QueueConflict",
                f"queue {name} {problem}; delete or rename it, or tag it "
                f"{TAG_NAMESPACE}={owner.namespace} {TAG_NAME}={owner.name}",
                transient=False,
            )
        stale = {key: value for key, value in owner.tags().items() if tags.get(key) != value}
        if stale:
            self._call("TagQueue", QueueUrl=url, Tags=stale)
        report.adopted.append(name)
        observed = self._attributes(url)
        if observed is None:
            raise SqsFailure("QueueRace", f"{name} vanished while adopting it", transient=True,
                             delay=1.0)
        return url, observed

