"""The wake poller's one SQS call, GetQueueAttributes, without boto3's per-call machinery
(`call` also sends the CreateQueue calls of a creation burst).

A thousand sleeping environments mean ~17 of these calls a second, so their CPU is most of an
idle operator's. Through boto3 each cost milliseconds (parameter validation, event hooks,
serializers, parsers, a thread hop), through aiohttp with botocore's signer still ~1.5 ms
(aiohttp's request and response objects, botocore re-deriving the signing key and re-parsing
the URL per call). Here: the AWS JSON 1.0 request botocore itself sends to SQS, signed with
SigV4 (the signing key derived once a day per secret), written as bytes on a pooled keep-alive
HTTP/1.1 connection (`http1`; TLS for https endpoints), with the same credential chain (IRSA, Pod
Identity, environment) and endpoint as the boto3 client, so the IAM policy is the same.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from botocore.credentials import ReadOnlyCredentials

from webordinary.operator.adapters.http1 import Pool, Unreachable, request_head

CONTENT_TYPE: Final = "application/x-amz-json-1.0"
TARGET: Final = "AmazonSQS.GetQueueAttributes"
SERVICE: Final = "sqs"
CREDENTIALS_MAX_AGE: Final = 60.0  # seconds; botocore refreshes expiring ones when asked
MAX_BODY: Final = 1024 * 1024
# the error codes of a queue that does not exist (JSON protocol, and the query protocol's)
NOT_FOUND: Final = frozenset({"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"})


class ProbeError(Exception):
    """An SQS error answer (code as boto3 would name it) or no answer (status 0)."""

    def __init__(self, status: int, code: str, message: str,
                 action: str = "GetQueueAttributes") -> None:
        super().__init__(f"{action}: {status} {code}: {message}")
        self.status = status
        self.code = code


class Signer:
    """AWS Signature Version 4 for one POST of the JSON protocol to one host, as botocore's
    SigV4Auth computes it (a test holds them equal); the derived key is kept per day."""

    def __init__(self, host: str, region: str, path: str = "/") -> None:
        self.host = host
        self.region = region
        self.path = path
        self._key: tuple[str, str, bytes] | None = None  # (secret, yyyymmdd, key)

    def _signing_key(self, secret: str, day: str) -> bytes:
        if self._key is None or self._key[:2] != (secret, day):
            key = ("AWS4" + secret).encode()
            for part in (day, self.region, SERVICE, "aws4_request"):
                key = hmac.new(key, part.encode(), hashlib.sha256).digest()
            self._key = (secret, day, key)
        return self._key[2]

    def headers(self, payload: bytes, credentials: ReadOnlyCredentials,
                now: datetime, target: str = TARGET) -> dict[str, str]:
        """The headers to send (signed ones and Authorization) for `payload` at `now`."""
        stamp = now.strftime("%Y%m%dT%H%M%SZ")
        day = stamp[:8]
        headers = {"content-type": CONTENT_TYPE, "host": self.host, "x-amz-date": stamp,
                   "x-amz-target": target}
        if credentials.token:
            headers["x-amz-security-token"] = credentials.token
        signed = ";".join(sorted(headers))
        canonical = "\n".join((
            "POST", self.path, "",
            "".join(f"{name}:{headers[name]}\n" for name in sorted(headers)),
            signed, hashlib.sha256(payload).hexdigest()))
        scope = f"{day}/{self.region}/{SERVICE}/aws4_request"
        to_sign = "\n".join(("AWS4-HMAC-SHA256", stamp, scope,
                             hashlib.sha256(canonical.encode()).hexdigest()))
        signature = hmac.new(self._signing_key(credentials.secret_key, day), to_sign.encode(),
                             hashlib.sha256).hexdigest()
        headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/"
                                    f"{scope}, SignedHeaders={signed}, Signature={signature}")
        return headers


class QueueProbe:
    """Message counts of one queue per call, over a pool of keep-alive connections."""

    def __init__(self, endpoint_url: str, region: str, credentials: Any,
                 *, connections: int = 16, timeout: float = 20.0) -> None:
        self._pool = Pool(endpoint_url, limit=connections, timeout=timeout)
        self._signer = Signer(self._pool.host, region, self._pool.prefix + "/")
        self._credentials = credentials  # botocore Credentials (refreshable) or None
        self._frozen: tuple[float, ReadOnlyCredentials | None] | None = None

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
        try:
            parsed = await self.call("GetQueueAttributes",
                                     {"QueueUrl": queue_url, "AttributeNames": names})
        except ProbeError as error:
            if error.code in NOT_FOUND:
                return None
            raise
        return {str(k): str(v) for k, v in (parsed.get("Attributes") or {}).items()}

    async def call(self, action: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """One SQS action of the JSON protocol, its answer parsed; ProbeError for an error
        answer or none. Only for actions safe to send twice (reads, an idempotent create)."""
        payload = json.dumps(body).encode()
        target = f"AmazonSQS.{action}"
        credentials = await self._signing_credentials()
        if credentials is not None:
            headers = self._signer.headers(payload, credentials, datetime.now(UTC), target)
        else:
            headers = {"content-type": CONTENT_TYPE, "host": self._signer.host,
                       "x-amz-target": target}
        head = request_head("POST", self._signer.path, headers, len(payload))
        try:
            answer = await self._pool.request(head, payload, MAX_BODY)
        except Unreachable as error:
            raise ProbeError(0, "Unreachable", str(error), action) from error
        try:
            parsed = json.loads(answer.body or b"{}")
        except ValueError:
            parsed = {}
        if not isinstance(parsed, dict):
            parsed = {}
        if answer.status == 200:
            return parsed
        query_error = answer.headers.get("x-amzn-query-error", "")
        code = query_error.split(";", 1)[0] or str(parsed.get("__type", "")).rsplit("#", 1)[-1]
        raise ProbeError(answer.status, code,
                         str(parsed.get("message") or parsed.get("Message") or ""), action)

    async def close(self) -> None:
        await self._pool.close()
