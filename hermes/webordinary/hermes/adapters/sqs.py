"""SQS over aiohttp (the JSON protocol, SigV4-signed with botocore's signer): no thread per call.

A long poll is a pending HTTP request on the event loop, so a thousand environments' output
queues cost a thousand idle sockets, not a thousand threads; a result comes back as soon as SQS
has it. Credentials come from botocore's usual chain (IRSA, environment, profile) and are
refreshed off the loop.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import aiohttp
import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

from webordinary.hermes.adapters.aws import QueueMessage

_TRANSIENT_TYPES = ("Throttling", "RequestThrottled", "ServiceUnavailable", "InternalError",
                    "InternalFailure", "KmsThrottled", "TooManyRequests")


class SqsError(Exception):
    """SQS answered with an error (`code` is its type without the namespace)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.transient = status >= 500 or any(t in code for t in _TRANSIENT_TYPES)


class AsyncSqs:
    """The SQS calls Hermes makes (receive, delete, send), as coroutines."""

    def __init__(self, region: str, endpoint_url: str | None = None,
                 long_poll_slack: float = 15.0) -> None:
        self.region = region
        self.endpoint = (endpoint_url or f"https://sqs.{region}.amazonaws.com").rstrip("/") + "/"
        self._credentials = boto3.session.Session(region_name=region).get_credentials()
        self._slack = long_poll_slack
        self._session: aiohttp.ClientSession | None = None
        self.calls: Counter[str] = Counter()
        """Calls per queue URL (benchmarks count what sleeping environments cost)."""

    async def _signed_headers(self, target: str, body: bytes) -> dict[str, str]:
        credentials = self._credentials
        if credentials is None:
            raise SqsError(0, "NoCredentials", "no AWS credentials found")
        if getattr(credentials, "refresh_needed", lambda: False)():
            frozen = await asyncio.to_thread(credentials.get_frozen_credentials)
        else:
            frozen = credentials.get_frozen_credentials()
        request = AWSRequest(method="POST", url=self.endpoint, data=body, headers={
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": f"AmazonSQS.{target}",
        })
        SigV4Auth(frozen, "sqs", self.region).add_auth(request)
        return {k: str(v) for k, v in request.headers.items()}

    async def call(self, target: str, payload: dict[str, Any], wait: float = 0.0) -> Any:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300),
            )
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = await self._signed_headers(target, body)
        url = payload.get("QueueUrl")
        if isinstance(url, str):
            self.calls[url] += 1
        timeout = aiohttp.ClientTimeout(total=wait + self._slack, connect=5)
        async with self._session.post(self.endpoint, data=body, headers=headers,
                                      timeout=timeout) as response:
            text = await response.text()
            if response.status >= 400:
                code, message = "Error", text[:300]
                try:
                    error = json.loads(text)
                    code = str(error.get("__type", code)).rpartition("#")[2]
                    message = str(error.get("message") or error.get("Message") or message)
                except (json.JSONDecodeError, AttributeError):
                    pass
                raise SqsError(response.status, code, message)
            return json.loads(text) if text else {}

    async def receive(
        self, url: str, max_messages: int = 10, wait_seconds: int = 0,
        visibility_seconds: int | None = None,
    ) -> list[QueueMessage]:
        payload: dict[str, Any] = {
            "QueueUrl": url, "MaxNumberOfMessages": max_messages,
            "WaitTimeSeconds": wait_seconds,
            "MessageSystemAttributeNames": ["ApproximateReceiveCount"],
            "AttributeNames": ["ApproximateReceiveCount"],
        }
        if visibility_seconds is not None:
            payload["VisibilityTimeout"] = visibility_seconds
        answer = await self.call("ReceiveMessage", payload, wait=float(wait_seconds))
        return [
            QueueMessage(
                body=m["Body"], receipt_handle=m["ReceiptHandle"], message_id=m["MessageId"],
                receive_count=int((m.get("Attributes") or {}).get("ApproximateReceiveCount", 1)),
            )
            for m in answer.get("Messages") or []
        ]

    async def delete(self, url: str, receipt_handle: str) -> None:
        await self.call("DeleteMessage", {"QueueUrl": url, "ReceiptHandle": receipt_handle})

    async def send(self, url: str, body: str, group_id: str | None = None,
                   dedup_id: str | None = None,
                   attributes: dict[str, str] | None = None) -> str:
        payload: dict[str, Any] = {"QueueUrl": url, "MessageBody": body}
        if url.endswith(".fifo"):
            payload["MessageGroupId"] = group_id or "default"
            if dedup_id:
                payload["MessageDeduplicationId"] = dedup_id
        if attributes:
            payload["MessageAttributes"] = {
                k: {"DataType": "String", "StringValue": v[:1000] or "-"}
                for k, v in attributes.items()
            }
        answer = await self.call("SendMessage", payload)
        return str(answer.get("MessageId", ""))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
