"""Forwarding one request, streamed both ways, or one websocket, to an editor's preview port.

Bodies are never buffered whole: request bodies stream upstream as they arrive, responses
stream back chunk by chunk, and every write waits for the socket to drain (backpressure: a
slow browser slows the read from the editor, not the gateway's memory).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from http.cookies import CookieError, SimpleCookie
from typing import Final

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from webordinary.contracts import forwarding
from webordinary.contracts.links import COOKIE_NAME

CHUNK: Final = 64 * 1024


class UpstreamUnavailable(ConnectionError):
    """The editor did not accept the connection (gone, or not listening yet)."""


class UpstreamTimeout(TimeoutError):
    """The editor accepted but did not answer in time."""


def strip_cookie(value: str, name: str = COOKIE_NAME) -> str | None:
    """The Cookie header without the gateway's own cookie: the preview (customer code) never
    sees the link token."""
    return forwarding.strip_cookie(value, name)


def read_cookie(value: str | None, name: str = COOKIE_NAME) -> str | None:
    if not value or name not in value:
        return None
    cookies: SimpleCookie = SimpleCookie()
    try:
        cookies.load(value)
    except CookieError:
        return None
    morsel = cookies.get(name)
    return morsel.value if morsel is not None else None


def upstream_headers(
    headers: Mapping[str, str], *, remote: str | None, scheme: str, trust_forwarded: bool,
    websocket: bool = False,
) -> CIMultiDict[str]:
    """Hop-by-hop headers (and those named by Connection) dropped, Host kept, the gateway's
    cookie removed, X-Forwarded-For/-Proto/-Host set (contracts.forwarding)."""
    return CIMultiDict(forwarding.request_headers(
        headers, remote=remote, scheme=scheme, trust_forwarded=trust_forwarded,
        websocket=websocket, drop_cookie=COOKIE_NAME))


def downstream_headers(headers: Mapping[str, str]) -> CIMultiDict[str]:
    return CIMultiDict(forwarding.response_headers(headers))


async def forward_http(
    request: web.Request, client: aiohttp.ClientSession, base_url: str, *,
    trust_forwarded: bool, read_timeout: float,
    on_headers: Callable[[float], None] | None = None,
) -> web.StreamResponse:
    """Stream the request to the editor and its answer back, bytes untouched."""
    headers = upstream_headers(request.headers, remote=request.remote, scheme=request.scheme,
                               trust_forwarded=trust_forwarded)
    body = request.content if request.body_exists else None
    began = time.perf_counter()
    try:
        upstream = await client.request(
            request.method, URL(base_url + request.raw_path, encoded=True), headers=headers,
            data=body, allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=None, sock_read=read_timeout),
        )
    except aiohttp.ClientConnectorError as exc:
        raise UpstreamUnavailable(str(exc)) from exc
    except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
        raise UpstreamTimeout(str(exc)) from exc
    async with upstream:
        waited = time.perf_counter() - began
        if on_headers is not None:
            on_headers(waited)
        headers = downstream_headers(upstream.headers)
        # The time the editor took to answer, so that a browser's devtools (and the bench)
        # can tell the gateway's own share of a slow page from the editor's.
        headers.add("Server-Timing", f"upstream;dur={waited * 1000:.3f}")
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason,
                                      headers=headers)
        await response.prepare(request)
        if request.method != "HEAD":
            try:
                async for chunk in upstream.content.iter_chunked(CHUNK):
                    await response.write(chunk)
            except (TimeoutError, aiohttp.ClientPayloadError):
                # Headers are out: all we can do is cut the response short.
                if request.transport is not None:
                    request.transport.close()
                return response
        await response.write_eof()
        return response


async def _pump(
    source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
    target: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
    seen: list[float],
) -> None:
    async for message in source:
        seen[0] = time.monotonic()
        if message.type is aiohttp.WSMsgType.TEXT:
            await target.send_str(message.data)
        elif message.type is aiohttp.WSMsgType.BINARY:
            await target.send_bytes(message.data)
        elif message.type is aiohttp.WSMsgType.PING:
            await target.ping(message.data)
        elif message.type is aiohttp.WSMsgType.PONG:
            await target.pong(message.data)
        else:
            break


async def _idle_watch(seen: list[float], idle: float) -> None:
    while True:
        left = seen[0] + idle - time.monotonic()
        if left <= 0:
            return
        await asyncio.sleep(left)


async def forward_websocket(
    request: web.Request, client: aiohttp.ClientSession, base_url: str, *,
    trust_forwarded: bool, idle_timeout: float,
) -> web.StreamResponse:
    """Open the same websocket upstream first (same subprotocols), then splice the two."""
    protocols = tuple(p.strip() for p in
                      request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip())
    headers = upstream_headers(request.headers, remote=request.remote, scheme=request.scheme,
                               trust_forwarded=trust_forwarded, websocket=True)
    try:
        upstream = await client.ws_connect(
            URL(base_url + request.raw_path, encoded=True), protocols=protocols,
            headers=headers, autoping=False, max_msg_size=0,
            timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5),
        )
    except aiohttp.WSServerHandshakeError as exc:
        return web.Response(status=exc.status or 502, text="websocket refused by the preview\n")
    except aiohttp.ClientConnectorError as exc:
        raise UpstreamUnavailable(str(exc)) from exc
    except TimeoutError as exc:
        raise UpstreamTimeout(str(exc)) from exc
    downstream = web.WebSocketResponse(
        protocols=(upstream.protocol,) if upstream.protocol else (), autoping=False,
        max_msg_size=0,
    )
    seen = [time.monotonic()]
    try:
        await downstream.prepare(request)
        tasks = [asyncio.create_task(_pump(upstream, downstream, seen)),
                 asyncio.create_task(_pump(downstream, upstream, seen)),
                 asyncio.create_task(_idle_watch(seen, idle_timeout))]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
    finally:
        code = upstream.close_code or downstream.close_code or aiohttp.WSCloseCode.OK
        with contextlib.suppress(Exception):
            await upstream.close()
        with contextlib.suppress(Exception):
            await downstream.close(code=code)
    return downstream
