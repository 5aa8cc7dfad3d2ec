"""The wake poller's one SQS call, GetQueueAttributes, without boto3's per-call machinery.

A thousand sleeping environments mean ~17 of these calls a second, so their CPU is most of an
idle operator's. Through boto3 each cost milliseconds (parameter validation, event hooks,
serializers, parsers, a thread hop), through aiohttp with botocore's signer still ~1.5 ms
(aiohttp's request and response objects, botocore re-deriving the signing key and re-parsing
the URL per call). Here: the AWS JSON 1.0 request botocore itself sends to SQS, signed with
SigV4 (the signing key derived once a day per secret), written as bytes on a pooled keep-alive
HTTP/1.1 connection (TLS for https endpoints), with the same credential chain (IRSA, Pod
Identity, environment) and endpoint as the boto3 client, so the IAM policy is the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import ssl
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlsplit

from botocore.credentials import ReadOnlyCredentials

CONTENT_TYPE: Final = "application/x-amz-json-1.0"
TARGET: Final = "AmazonSQS.GetQueueAttributes"
SERVICE: Final = "sqs"
CREDENTIALS_MAX_AGE: Final = 60.0  # seconds; botocore refreshes expiring ones when asked
MAX_HEAD: Final = 64 * 1024  # bytes of status line and headers
MAX_BODY: Final = 1024 * 1024


class ProbeError(Exception):
    """An SQS error answer (code as boto3 would name it) or no answer (status 0)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"GetQueueAttributes: {status} {code}: {message}")
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
                now: datetime) -> dict[str, str]:
        """The headers to send (signed ones and Authorization) for `payload` at `now`."""
        stamp = now.strftime("%Y%m%dT%H%M%SZ")
        day = stamp[:8]
        headers = {"content-type": CONTENT_TYPE, "host": self.host, "x-amz-date": stamp,
                   "x-amz-target": TARGET}
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


class _Answer:
    def __init__(self, status: int, headers: Mapping[str, str], body: bytes,
                 reusable: bool) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.reusable = reusable


async def _read_answer(reader: asyncio.StreamReader) -> _Answer:
    """One HTTP/1.1 response: status, headers, and a body by Content-Length, chunks or EOF."""
    head = await reader.readuntil(b"\r\n\r\n")
    if len(head) > MAX_HEAD:
        raise ValueError("response head too large")
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    status = int(rest.split(" ", 1)[0])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    connection = headers.get("connection", "").lower()
    reusable = version == "HTTP/1.1" and "close" not in connection
    if "chunked" in headers.get("transfer-encoding", "").lower():
        parts: list[bytes] = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip(), 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                    pass
                break
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
            if sum(map(len, parts)) > MAX_BODY:
                raise ValueError("response body too large")
        body = b"".join(parts)
    elif "content-length" in headers:
        length = int(headers["content-length"])
        if length > MAX_BODY:
            raise ValueError("response body too large")
        body = await reader.readexactly(length)
    elif status in (204, 304) or 100 <= status < 200:
        body = b""
    else:
        body = await reader.read(MAX_BODY)
        reusable = False
    return _Answer(status, headers, body, reusable)


class QueueProbe:
    """Message counts of one queue per call, over a pool of keep-alive connections."""

    def __init__(self, endpoint_url: str, region: str, credentials: Any,
                 *, connections: int = 16, timeout: float = 20.0) -> None:
        url = urlsplit(endpoint_url)
        self._tls = url.scheme == "https"
        self._address = (url.hostname or "localhost", url.port or (443 if self._tls else 80))
        default = url.port is None or url.port == (443 if self._tls else 80)
        host = url.hostname or "localhost"
        host = f"[{host}]" if ":" in host else host
        self._signer = Signer(host if default else f"{host}:{url.port}", region,
                              url.path.rstrip("/") + "/")
        self._credentials = credentials  # botocore Credentials (refreshable) or None
        self._frozen: tuple[float, ReadOnlyCredentials | None] | None = None
        self._timeout = timeout
        self._ssl: ssl.SSLContext | None = ssl.create_default_context() if self._tls else None
        self._connections = connections
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._limit: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the pool's (a test may run more)

    async def _signing_credentials(self) -> ReadOnlyCredentials | None:
        now = time.monotonic()
        if self._frozen is None or now - self._frozen[0] > CREDENTIALS_MAX_AGE:
            source = self._credentials
            frozen = None if source is None else await asyncio.get_running_loop(
            ).run_in_executor(None, source.get_frozen_credentials)  # may fetch (I/O)
            self._frozen = (now, frozen)
        return self._frozen[1]

    async def _request(self, head: bytes, payload: bytes) -> _Answer:
        """POST on an idle keep-alive connection (once more on a new one if the server had
        closed it: the call only reads) or a new one."""
        while self._idle:
            reader, writer = self._idle.pop()
            if reader.at_eof() or writer.is_closing():
                writer.close()
                continue
            try:
                return await self._exchange(reader, writer, head, payload)
            except (OSError, asyncio.IncompleteReadError):
                continue  # closed by the server while idle
        host, port = self._address
        reader, writer = await asyncio.open_connection(
            host, port, ssl=self._ssl, server_hostname=host if self._ssl else None)
        return await self._exchange(reader, writer, head, payload)

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                        head: bytes, payload: bytes) -> _Answer:
        try:
            writer.write(head + payload)
            answer = await _read_answer(reader)
        except BaseException:
            writer.close()
            raise
        if answer.reusable:
            self._idle.append((reader, writer))
        else:
            writer.close()
        return answer

    async def attributes(self, queue_url: str, names: list[str]) -> dict[str, str] | None:
        """The queue's attributes; None when the queue does not exist."""
        payload = json.dumps({"QueueUrl": queue_url, "AttributeNames": names}).encode()
        credentials = await self._signing_credentials()
        if credentials is not None:
            headers = self._signer.headers(payload, credentials, datetime.now(UTC))
        else:
            headers = {"content-type": CONTENT_TYPE, "host": self._signer.host,
                       "x-amz-target": TARGET}
        head = "".join((f"POST {self._signer.path} HTTP/1.1\r\n",
                        *(f"{name}: {value}\r\n" for name, value in headers.items()),
                        f"content-length: {len(payload)}\r\n\r\n")).encode()
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._limit is None:
            self._loop, self._idle = loop, []
            self._limit = asyncio.Semaphore(self._connections)
        try:
            async with self._limit, asyncio.timeout(self._timeout):
                answer = await self._request(head, payload)
        except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError,
                asyncio.LimitOverrunError) as error:
            raise ProbeError(0, "Unreachable", repr(error)) from error
        try:
            parsed = json.loads(answer.body or b"{}")
        except ValueError:
            parsed = {}
        if answer.status == 200:
            return {str(k): str(v) for k, v in (parsed.get("Attributes") or {}).items()}
        query_error = answer.headers.get("x-amzn-query-error", "")
        code = query_error.split(";", 1)[0] or str(parsed.get("__type", "")).rsplit("#", 1)[-1]
        if code in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
            return None
        raise ProbeError(answer.status, code,
                         str(parsed.get("message") or parsed.get("Message") or ""))

    async def close(self) -> None:
        while self._idle:
            _, writer = self._idle.pop()
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()
