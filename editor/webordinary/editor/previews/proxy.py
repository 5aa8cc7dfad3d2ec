"""Forwarding one request (plain HTTP, streamed, or a websocket) to a session's dev server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from webordinary.contracts import forwarding
from webordinary.editor.previews.scrub import scrub_hmr, scrub_paths


class UpstreamUnavailable(ConnectionError):
    """The dev server did not accept the connection: it is gone or not up yet."""


def upstream_headers(
    headers: Mapping[str, str], *, remote: str | None, scheme: str, websocket: bool = False
) -> CIMultiDict[str]:
    """Request headers for the dev server: hop-by-hop dropped, Host kept, X-Forwarded-* added
    to those of the gateway in front (contracts.forwarding)."""
    return CIMultiDict(forwarding.request_headers(
        headers, remote=remote, scheme=scheme, trust_forwarded=True, websocket=websocket))


def downstream_headers(headers: Mapping[str, str]) -> CIMultiDict[str]:
    """Response headers for the browser: everything but hop-by-hop ones."""
    return CIMultiDict(forwarding.response_headers(headers))


def upstream_url(base_url: str, raw_path: str) -> URL:
    return URL(f"{base_url}{raw_path}", encoded=True)


TEXTUAL: Final = ("text/", "application/json", "application/javascript")
SCRUB_MAX: Final = 2 * 2**20


def _scrubbable(upstream: aiohttp.ClientResponse) -> bool:
    """An error answer in plain text: its absolute paths are rewritten (it is small)."""
    if upstream.status < 400 or upstream.headers.get("Content-Encoding"):
        return False
    kind = upstream.headers.get("Content-Type", "")
    return kind.startswith(TEXTUAL) and int(upstream.headers.get("Content-Length") or 0) \
        <= SCRUB_MAX


async def forward_http(
    request: web.Request, client: aiohttp.ClientSession, base_url: str,
    scrub: Path | None = None,
) -> web.StreamResponse:
    """Stream the request to the dev server and its answer back, bytes untouched; error
    pages (4xx/5xx text) lose their absolute paths when `scrub` names the sessions folder."""
    headers = upstream_headers(request.headers, remote=request.remote, scheme=request.scheme)
    body = request.content if request.body_exists else None
    try:
        upstream = await client.request(
            request.method,
            upstream_url(base_url, request.raw_path),
            headers=headers,
            data=body,
            allow_redirects=False,
        )
    except aiohttp.ClientConnectorError as exc:
        raise UpstreamUnavailable(str(exc)) from exc
    async with upstream:
        if scrub is not None and _scrubbable(upstream):
            raw = await upstream.content.read(SCRUB_MAX)
            charset = upstream.charset or "utf-8"
            text = scrub_paths(raw.decode(charset, "replace"), scrub)
            headers = downstream_headers(upstream.headers)
            headers.popall("Content-Length", None)
            return web.Response(status=upstream.status, reason=upstream.reason,
                                body=text.encode(charset, "replace"), headers=headers)
        response = web.StreamResponse(
            status=upstream.status,
            reason=upstream.reason,
            headers=downstream_headers(upstream.headers),
        )
        await response.prepare(request)
        if request.method != "HEAD":
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
        await response.write_eof()
        return response


async def _pump(
    source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
    target: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
    scrub: Path | None = None,
) -> None:
    async for message in source:
        if message.type is aiohttp.WSMsgType.TEXT:
            await target.send_str(message.data if scrub is None
                                  else scrub_hmr(message.data, scrub))
        elif message.type is aiohttp.WSMsgType.BINARY:
            await target.send_bytes(message.data)
        elif message.type is aiohttp.WSMsgType.PING:
            await target.ping(message.data)
        elif message.type is aiohttp.WSMsgType.PONG:
            await target.pong(message.data)
        else:
            break


async def forward_websocket(
    request: web.Request, client: aiohttp.ClientSession, base_url: str,
    scrub: Path | None = None,
) -> web.StreamResponse:
    """Open the same websocket upstream first (same subprotocols), then splice the two; the
    dev server's HMR errors lose their absolute paths when `scrub` names the sessions folder
    (the error overlay shows them)."""
    protocols = tuple(
        p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()
    )
    headers = upstream_headers(
        request.headers, remote=request.remote, scheme=request.scheme, websocket=True
    )
    try:
        upstream = await client.ws_connect(
            upstream_url(base_url, request.raw_path),
            protocols=protocols,
            headers=headers,
            autoping=False,
            max_msg_size=0,
        )
    except aiohttp.WSServerHandshakeError as exc:
        return web.Response(status=exc.status or 502, text="websocket refused by the dev server")
    except aiohttp.ClientConnectorError as exc:
        raise UpstreamUnavailable(str(exc)) from exc
    downstream = web.WebSocketResponse(
        protocols=(upstream.protocol,) if upstream.protocol else (),
        autoping=False,
        max_msg_size=0,
    )
    try:
        await downstream.prepare(request)
        tasks = [
            asyncio.create_task(_pump(upstream, downstream, scrub)),
            asyncio.create_task(_pump(downstream, upstream)),
        ]
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
        await upstream.close()
        await downstream.close(code=code)
    return downstream
