"""The wake poller's one SQS call, GetQueueAttributes, without boto3's per-call machinery.

A thousand sleeping environments mean ~17 of these calls a second. Through boto3 each costs
milliseconds of CPU (parameter validation, event hooks, serializers, parsers, a thread hop);
here it is one aiohttp POST in the AWS JSON 1.0 protocol botocore itself speaks to SQS, signed
with botocore's SigV4 signer and the same credential chain (IRSA, Pod Identity, environment),
so the IAM policy and the endpoint are the boto3 client's.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Final

import aiohttp
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials

CONTENT_TYPE: Final = "application/x-amz-json-1.0"
TARGET: Final = "AmazonSQS.GetQueueAttributes"
CREDENTIALS_MAX_AGE: Final = 60.0  # seconds; botocore refreshes expiring ones when asked


class ProbeError(Exception):
    """An SQS error answer (code as boto3 would name it) or no answer (status 0)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"GetQueueAttributes: {status} {code}: {message}")
        self.status = status
        self.code = code


class QueueProbe:
    """Message counts of one queue per call, over one pooled aiohttp session."""

    def __init__(self, endpoint_url: str, region: str, credentials: Any,
                 *, connections: int = 16, timeout: float = 20.0) -> None:
        self._url = endpoint_url.rstrip("/") + "/"
        self._region = region
        self._credentials = credentials  # botocore Credentials (refreshable) or None
        self._frozen: tuple[float, ReadOnlyCredentials | None] | None = None
        self._connections = connections
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def _signing_credentials(self) -> ReadOnlyCredentials | None:
        now = time.monotonic()
        if self._frozen is None or now - self._frozen[0] > CREDENTIALS_MAX_AGE:
            source = self._credentials
            frozen = None if source is None else await asyncio.get_running_loop(
            ).run_in_executor(None, source.get_frozen_credentials)  # may fetch (I/O)
            self._frozen = (now, frozen)
        return self._frozen[1]

    async def attributes(self, queue_url: str, names: list[str]) -> dict[str, str] | None:
        """The queue's attributes; None when the queue does not exist."""
        payload = json.dumps({"QueueUrl": queue_url, "AttributeNames": names}).encode()
        request = AWSRequest(method="POST", url=self._url, data=payload,
                             headers={"Content-Type": CONTENT_TYPE, "X-Amz-Target": TARGET})
        credentials = await self._signing_credentials()
        if credentials is not None:
            SigV4Auth(credentials, "sqs", self._region).add_auth(request)
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connections),
                timeout=aiohttp.ClientTimeout(total=self._timeout))
        try:
            async with self._session.post(self._url, data=payload,
                                          headers=dict(request.headers.items())) as response:
                body = await response.read()
                status = response.status
                query_error = response.headers.get("x-amzn-query-error", "")
        except (aiohttp.ClientError, TimeoutError) as error:
            raise ProbeError(0, "Unreachable", repr(error)) from error
        try:
            answer = json.loads(body or b"{}")
        except ValueError:
            answer = {}
        if status == 200:
            return {str(k): str(v) for k, v in (answer.get("Attributes") or {}).items()}
        code = query_error.split(";", 1)[0] or str(answer.get("__type", "")).rsplit("#", 1)[-1]
        if code in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
            return None
        raise ProbeError(status, code, str(answer.get("message") or answer.get("Message") or ""))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
