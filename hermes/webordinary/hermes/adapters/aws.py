"""SES and S3 (and a boto3 SQS kept for tools) through boto3, in a dedicated thread pool so
the event loop never waits. Hermes' own SQS traffic goes through `adapters.sqs` (async)."""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol, TypeVar
from urllib.parse import urlencode

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

T = TypeVar("T")


@dataclass(frozen=True)
class QueueMessage:
    body: str
    receipt_handle: str
    message_id: str
    receive_count: int = 1


class QueueApi(Protocol):
    async def receive(
        self, url: str, max_messages: int = 10, wait_seconds: int = 0,
        visibility_seconds: int | None = None,
    ) -> list[QueueMessage]: ...

    async def delete(self, url: str, receipt_handle: str) -> None: ...

    async def send(self, url: str, body: str, group_id: str | None = None,
                   dedup_id: str | None = None,
                   attributes: dict[str, str] | None = None) -> str: ...


class Mailer(Protocol):
    async def send(self, raw: bytes, sender: str, recipients: list[str]) -> str:
        """Send; returns the provider's message id (SES MessageId, which becomes the
        Message-ID header recipients see), or "" when the provider keeps ours."""
        ...


class PermanentSendError(Exception):
    """The provider refused the mail for good (retrying cannot help)."""


_PERMANENT_SES = frozenset({"MessageRejected", "InvalidParameterValue",
                            "MailFromDomainNotVerifiedException", "AccountSendingPausedException"})


class BlobStore(Protocol):
    async def get(self, bucket: str, key: str) -> bytes: ...

    async def put(self, bucket: str, key: str, data: bytes, content_type: str,
                  tags: Mapping[str, str] | None = None) -> str: ...


class _Threaded:
    def __init__(self, executor: ThreadPoolExecutor) -> None:
        self._executor = executor

    async def _run(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(func, *args, **kwargs))


class AwsClients:
    """boto3 clients for one region/endpoint, sharing a thread pool."""

    def __init__(self, region: str, endpoint_url: str | None = None, threads: int = 64) -> None:
        config = Config(retries={"max_attempts": 3, "mode": "standard"},
                        max_pool_connections=threads, read_timeout=30, connect_timeout=5)
        session = boto3.session.Session(region_name=region)
        self.sqs = session.client("sqs", endpoint_url=endpoint_url, config=config)
        self.ses = session.client("ses", endpoint_url=endpoint_url, config=config)
        self.s3 = session.client("s3", endpoint_url=endpoint_url, config=config)
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="hermes-aws")

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


class SqsQueues(_Threaded):
    def __init__(self, clients: AwsClients) -> None:
        super().__init__(clients.executor)
        self._sqs = clients.sqs

    async def receive(
        self, url: str, max_messages: int = 10, wait_seconds: int = 0,
        visibility_seconds: int | None = None,
    ) -> list[QueueMessage]:
        args: dict[str, Any] = {
            "QueueUrl": url, "MaxNumberOfMessages": max_messages, "WaitTimeSeconds": wait_seconds,
            "MessageSystemAttributeNames": ["ApproximateReceiveCount"],
        }
        if visibility_seconds is not None:
            args["VisibilityTimeout"] = visibility_seconds
        answer = await self._run(self._sqs.receive_message, **args)
        return [
            QueueMessage(
                body=m["Body"], receipt_handle=m["ReceiptHandle"], message_id=m["MessageId"],
                receive_count=int(m.get("Attributes", {}).get("ApproximateReceiveCount", 1)),
            )
            for m in answer.get("Messages", [])
        ]

    async def delete(self, url: str, receipt_handle: str) -> None:
        await self._run(self._sqs.delete_message, QueueUrl=url, ReceiptHandle=receipt_handle)

    async def send(self, url: str, body: str, group_id: str | None = None,
                   dedup_id: str | None = None,
                   attributes: dict[str, str] | None = None) -> str:
        args: dict[str, Any] = {"QueueUrl": url, "MessageBody": body}
        if attributes:
            args["MessageAttributes"] = {k: {"DataType": "String", "StringValue": v or "-"}
                                         for k, v in attributes.items()}
        if url.endswith(".fifo"):
            args["MessageGroupId"] = group_id or "default"
            if dedup_id:
                args["MessageDeduplicationId"] = dedup_id
        answer = await self._run(self._sqs.send_message, **args)
        return str(answer["MessageId"])


class SesMailer(_Threaded):
    def __init__(self, clients: AwsClients) -> None:
        super().__init__(clients.executor)
        self._ses = clients.ses

    async def send(self, raw: bytes, sender: str, recipients: list[str]) -> str:
        try:
            answer = await self._run(
                self._ses.send_raw_email, Source=sender, Destinations=recipients,
                RawMessage={"Data": raw},
            )
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in _PERMANENT_SES:
                raise PermanentSendError(f"SES refused the mail: {code}: {exc}") from exc
            raise
        return str(answer["MessageId"])


class SmtpMailer(_Threaded):
    """Replies over plain SMTP (local mode: e.g. a developer's mail catcher)."""

    def __init__(self, host: str, port: int, executor: ThreadPoolExecutor) -> None:
        super().__init__(executor)
        self.host = host
        self.port = port

    def _send(self, raw: bytes, sender: str, recipients: list[str]) -> str:
        with smtplib.SMTP(self.host, self.port, timeout=30) as client:
            client.sendmail(sender, recipients, raw)
        return ""  # SMTP keeps our Message-ID

    async def send(self, raw: bytes, sender: str, recipients: list[str]) -> str:
        return await self._run(self._send, raw, sender, recipients)


class S3Blobs(_Threaded):
    def __init__(self, clients: AwsClients) -> None:
        super().__init__(clients.executor)
        self._s3 = clients.s3

    def _get(self, bucket: str, key: str) -> bytes:
        body = self._s3.get_object(Bucket=bucket, Key=key)["Body"]
        try:
            data: bytes = body.read()
        finally:
            body.close()
        return data

    async def get(self, bucket: str, key: str) -> bytes:
        return await self._run(self._get, bucket, key)

    async def put(self, bucket: str, key: str, data: bytes, content_type: str,
                  tags: Mapping[str, str] | None = None) -> str:
        """Store an object; `tags` (ownership.tags) let only its environment's editor read it."""
        await self._run(
            self._s3.put_object, Bucket=bucket, Key=key, Body=data, ContentType=content_type,
            Tagging=urlencode(dict(tags or {})),
        )
        return f"s3://{bucket}/{key}"
