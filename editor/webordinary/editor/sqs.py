"""A thin async adapter over the environment's three SQS queues (boto3 in daemon threads)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config as BotoConfig

from webordinary.contracts.editor_env import EditorEnv
from webordinary.contracts.messages import Result
from webordinary.editor.planner import parse_s3_uri


@dataclass
class Received:
    """One message taken from the input queue (invisible to others while we hold it)."""

    message_id: str
    receipt: str
    body: str
    receive_count: int
    received_at: float


async def in_thread[T](fn: Callable[[], T]) -> T:
    """Run a blocking call in a daemon thread: a 20 s long poll never holds up process exit."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(value: Any, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)

    def target() -> None:
        try:
            value, error = fn(), None
        except BaseException as exc:
            value, error = None, exc
        # RuntimeError: the loop is gone (shutdown); an unacknowledged message comes back later.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, value, error)

    threading.Thread(target=target, name="sqs", daemon=True).start()
    return await future


class Queues:
    """Receive/extend/delete on the input queue, send results to the output queue."""

    def __init__(self, env: EditorEnv) -> None:
        self.env = env
        self.client = boto3.client(
            "sqs", region_name=env.aws_region, endpoint_url=env.sqs_endpoint_url,
            config=BotoConfig(read_timeout=40, connect_timeout=5,
                              retries={"max_attempts": 3, "mode": "standard"}),
        )

    async def receive(self, wait_seconds: int, visibility: int) -> list[Received]:
        def call() -> list[Received]:
            answer = self.client.receive_message(
                QueueUrl=self.env.input_queue_url, MaxNumberOfMessages=1,
                WaitTimeSeconds=wait_seconds, VisibilityTimeout=visibility,
                MessageSystemAttributeNames=["ApproximateReceiveCount"],
            )
            now = time.time()
            return [
                Received(
                    message_id=m["MessageId"], receipt=m["ReceiptHandle"], body=m.get("Body", ""),
                    receive_count=int(m.get("Attributes", {}).get("ApproximateReceiveCount", 1)),
                    received_at=now,
                )
                for m in answer.get("Messages", [])
            ]

        return await in_thread(call)

    async def send(self, result: Result) -> None:
        body = json.dumps(result.to_wire(), ensure_ascii=False)
        extra: dict[str, str] = {}
        if self.env.output_queue_url.endswith(".fifo"):
            extra = {"MessageGroupId": result.session_id or "none",
                     "MessageDeduplicationId": f"{result.command_id}-{result.status.value}"[:128]}
        await in_thread(lambda: self.client.send_message(
            QueueUrl=self.env.output_queue_url, MessageBody=body, **extra))

    async def delete(self, receipt: str) -> None:
        await in_thread(lambda: self.client.delete_message(
            QueueUrl=self.env.input_queue_url, ReceiptHandle=receipt))

    async def extend(self, receipt: str, seconds: int) -> None:
        await in_thread(lambda: self.client.change_message_visibility(
            QueueUrl=self.env.input_queue_url, ReceiptHandle=receipt, VisibilityTimeout=seconds))

    async def max_receive_count(self) -> int | None:
        """maxReceiveCount of the input queue's redrive policy (when it has one)."""
        answer = await in_thread(lambda: self.client.get_queue_attributes(
            QueueUrl=self.env.input_queue_url, AttributeNames=["RedrivePolicy"]))
        raw = answer.get("Attributes", {}).get("RedrivePolicy")
        if not raw:
            return None
        return int(json.loads(raw).get("maxReceiveCount", 0)) or None


class Attachments:
    """Reads attachments Hermes stored in S3 (the large ones) for the edit they belong to."""

    def __init__(self, region: str, endpoint_url: str | None) -> None:
        self.region = region
        self.endpoint_url = endpoint_url
        self._client: Any = None

    async def fetch(self, uri: str, max_bytes: int) -> bytes:
        bucket, key = parse_s3_uri(uri)
        if self._client is None:
            self._client = boto3.client("s3", region_name=self.region,
                                        endpoint_url=self.endpoint_url)
        client = self._client

        def call() -> bytes:
            answer = client.get_object(Bucket=bucket, Key=key)
            if int(answer.get("ContentLength", 0)) > max_bytes:
                raise ValueError(f"larger than {max_bytes} bytes")
            data: bytes = answer["Body"].read(max_bytes + 1)
            if len(data) > max_bytes:
                raise ValueError(f"larger than {max_bytes} bytes")
            return data

        return await in_thread(call)
