"""A minimal HTTP/1.1 client for the operator's hot calls: requests written as bytes on pooled
keep-alive connections (TLS when asked), answers read by Content-Length, chunks or EOF.

At a thousand wakes or sleep deadlines the operator's CPU per API or SQS call matters more
than features: aiohttp's client spends ~1 ms of CPU per request on its request/response
objects, this ~0.3 ms. No redirects, proxies, cookies or compression (none of the callers
used them).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

MAX_HEAD: Final = 64 * 1024  # bytes of status line and headers
MAX_BODY: Final = 256 * 1024 * 1024


@dataclass
class Answer:
    status: int
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    reusable: bool  # the connection may carry another request


class Unreachable(Exception):
    """No answer: connection refused or broken, a timeout, or not HTTP."""


class _Stale(Exception):
    """A kept-alive connection the server had closed: no answer came."""


async def read_answer(reader: asyncio.StreamReader, head: bytes,
                      max_body: int = MAX_BODY) -> Answer:
    """One HTTP/1.1 response after its `head` (status line and headers): the body by
    Content-Length, chunks or EOF."""
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    status = int(rest.split(" ", 1)[0])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    reusable = version == "HTTP/1.1" and "close" not in headers.get("connection", "").lower()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        parts: list[bytes] = []
        size_read = 0
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip(), 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                    pass
                break
            size_read += size
            if size_read > max_body:
                raise ValueError("response body too large")
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        body = b"".join(parts)
    elif "content-length" in headers:
        length = int(headers["content-length"])
        if length > max_body:
            raise ValueError("response body too large")
        body = await reader.readexactly(length)
    elif status in (204, 304) or 100 <= status < 200:
        body = b""
    else:
        body = await reader.read(max_body)
        reusable = False
    return Answer(status, headers, body, reusable)


def request_head(method: str, target: str, headers: Mapping[str, str],
                 length: int | None) -> bytes:
    """A request line and headers, ending in the empty line (`content-length` when given)."""
    return "".join((f"{method} {target} HTTP/1.1\r\n",
                    *(f"{name}: {value}\r\n" for name, value in headers.items()),
                    "" if length is None else f"content-length: {length}\r\n",
                    "\r\n")).encode()


class Pool:
    """Keep-alive connections to one origin (scheme://host:port), at most `limit` at once;
    each answer within `timeout` seconds of sending."""

    def __init__(self, url: str, *, limit: int = 16, ssl_context: ssl.SSLContext | None = None,
                 timeout: float = 30.0, connect_timeout: float = 10.0) -> None:
        parts = urlsplit(url)
        tls = parts.scheme == "https"
        self.hostname = parts.hostname or "localhost"
        self.port = parts.port or (443 if tls else 80)
        bracketed = f"[{self.hostname}]" if ":" in self.hostname else self.hostname
        default = parts.port is None or parts.port == (443 if tls else 80)
        self.host = bracketed if default else f"{bracketed}:{parts.port}"  # the Host header
        self.prefix = parts.path.rstrip("/")  # a server URL's path (e.g. behind a proxy)
        self._ssl = (ssl_context or ssl.create_default_context()) if tls else None
        self._limit_size = limit
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._limit: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the pool's (a test may run more)

    async def request(self, head: bytes, body: bytes, max_body: int = MAX_BODY) -> Answer:
        """Send `head` (request line and headers, ending in an empty line) and `body`; the
        answer. A reused connection the server had closed is retried
        once on a new one, so callers send only requests that may be repeated (reads, and
        writes the server rejected unread)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._limit is None:
            self._loop, self._idle = loop, []
            self._limit = asyncio.Semaphore(self._limit_size)
        try:
            async with self._limit:  # waiting for a connection is not the server being slow
                async with asyncio.timeout(self._timeout):
                    return await self._request(head + body, max_body)
        except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError,
                asyncio.LimitOverrunError) as error:
            raise Unreachable(repr(error)) from error

    async def _request(self, data: bytes, max_body: int) -> Answer:
        while self._idle:
            reader, writer = self._idle.pop()
            if reader.at_eof() or writer.is_closing():
                writer.close()
                continue
            try:
                return await self._exchange(reader, writer, data, max_body, reused=True)
            except _Stale:
                continue
        async with asyncio.timeout(self._connect_timeout):
            reader, writer = await asyncio.open_connection(
                self.hostname, self.port, ssl=self._ssl,
                server_hostname=self.hostname if self._ssl else None, limit=MAX_HEAD)
        return await self._exchange(reader, writer, data, max_body, reused=False)

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                        data: bytes, max_body: int, *, reused: bool) -> Answer:
        try:
            try:
                writer.write(data)
                head = await reader.readuntil(b"\r\n\r\n")
            except (OSError, asyncio.IncompleteReadError) as error:
                if reused and not getattr(error, "partial", b""):
                    raise _Stale from error  # closed while idle: nothing was answered
                raise
            answer = await read_answer(reader, head, max_body)
        except BaseException:
            writer.close()
            raise
        if answer.reusable:
            self._idle.append((reader, writer))
        else:
            writer.close()
        return answer

    async def close(self) -> None:
        while self._idle:
            _, writer = self._idle.pop()
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()
