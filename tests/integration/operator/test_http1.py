"""The operator's lean HTTP/1.1 pool against a real aiohttp server over loopback: keep-alive
reuse, answers by length, chunks and EOF, a kept-alive connection the server closed, and no
answer at all."""

from __future__ import annotations

import asyncio
import socket

import pytest
from aiohttp import web

from webordinary.operator.adapters.http1 import Pool, Unreachable


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, keepalive_timeout=0.3)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


def request(path: str, body: bytes = b"", host: str = "x") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-length: {len(body)}\r\n\r\n"
            ).encode()


def test_answers_by_length_chunks_and_eof_on_reused_connections() -> None:
    peers: set[int] = set()

    async def length(request: web.Request) -> web.Response:
        assert request.transport is not None
        peers.add(request.transport.get_extra_info("peername")[1])
        return web.json_response({"echo": (await request.read()).decode()})

    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=201)
        response.enable_chunked_encoding()
        await response.prepare(request)
        for part in (b'{"a": ', b"1", b"}"):
            await response.write(part)
        await response.write_eof()
        return response

    async def closing(request: web.Request) -> web.Response:
        return web.Response(body=b"bye", headers={"Connection": "close"})

    async def scenario() -> None:
        app = web.Application()
        app.router.add_post("/length", length)
        app.router.add_post("/chunked", chunked)
        app.router.add_post("/closing", closing)
        runner, url = await serve(app)
        pool = Pool(url, limit=4, timeout=5)
        try:
            for i in range(5):
                answer = await pool.request(request("/length", b"hi"), b"hi")
                assert (answer.status, answer.body) == (200, b'{"echo": "hi"}'), i
            assert len(peers) == 1, "one kept-alive connection carried them all"
            answer = await pool.request(request("/chunked"), b"")
            assert (answer.status, answer.body) == (201, b'{"a": 1}')
            answer = await pool.request(request("/closing"), b"")
            assert (answer.body, answer.reusable) == (b"bye", False)
            await asyncio.sleep(1.0)  # the server closes the idle connection
            answer = await pool.request(request("/length", b"again"), b"again")
            assert answer.body == b'{"echo": "again"}', "a stale connection is retried anew"
            answers = await asyncio.gather(*(pool.request(request("/length"), b"")
                                             for _ in range(20)))
            assert {a.status for a in answers} == {200}
        finally:
            await pool.close()
            await runner.cleanup()

    asyncio.run(scenario())


def test_no_answer_is_unreachable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens there once closed

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)
        writer.close()

    async def scenario() -> None:
        with pytest.raises(Unreachable):  # a refused connection
            await Pool(f"http://127.0.0.1:{port}", timeout=1).request(request("/"), b"")
        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        slow = Pool(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", timeout=0.5)
        try:
            with pytest.raises(Unreachable):  # no answer within the timeout
                await slow.request(request("/"), b"")
        finally:
            server.close()

    asyncio.run(scenario())
