"""The credential proxy over real HTTP: who may use it, where it forwards, what it counts."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from webordinary.editor.credentials.proxy import CredentialProxy, load_or_create_token
from webordinary.editor.credentials.settings import ProxySettings
from webordinary.editor.credentials.usage import StreamMeter, from_message

REAL_KEY = "sk-ant-real-platform-key"
GIT_TOKEN = "ghp_real_git_token"
POD_KEY = "p" * 43


class Upstream:
    """A Messages API stand-in that records the key it was called with."""

    def __init__(self) -> None:
        self.keys: list[str | None] = []
        self.paths: list[str] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/messages", self.messages)
        return app

    async def messages(self, request: web.Request) -> web.StreamResponse:
        self.keys.append(request.headers.get("x-api-key"))
        self.paths.append(request.path_qs)
        body = await request.json()
        if not body.get("stream"):
            return web.json_response({"type": "message", "usage": {
                "input_tokens": 10, "cache_read_input_tokens": 5, "output_tokens": 7}})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        events = [
            {"type": "message_start", "message": {"usage": {"input_tokens": 100,
                                                            "output_tokens": 1}}},
            {"type": "message_delta", "usage": {"output_tokens": 12}},
            {"type": "message_delta", "usage": {"output_tokens": 42}},
            {"type": "message_stop"},
        ]
        for event in events:
            await response.write(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())
        await response.write_eof()
        return response


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[tuple[str, Upstream, CredentialProxy]]:
    upstream = Upstream()
    up = TestServer(upstream.app())
    await up.start_server()
    settings = ProxySettings(
        api_base_url=str(up.make_url("")).rstrip("/"), api_key=REAL_KEY, git_token=GIT_TOKEN,
        repository_url="https://git.example.com/acme/site.git", environment="acme-site-ann",
        token_file=tmp_path / "token", metrics_port=None)
    proxy = CredentialProxy(settings, POD_KEY)
    server = TestServer(proxy.app())
    await server.start_server()
    yield str(server.make_url("")).rstrip("/"), upstream, proxy
    await server.close()
    await up.close()


async def test_api_calls_need_the_pod_key_and_get_the_real_one_upstream(
        rig: tuple[str, Upstream, CredentialProxy]) -> None:
    url, upstream, proxy = rig
    async with aiohttp.ClientSession() as client:
        async with client.post(f"{url}/v1/messages?beta=true", json={"stream": True},
                               headers={"x-api-key": "sk-guessed"}) as resp:
            assert resp.status == 401
        async with client.post(f"{url}/v1/messages?beta=true", json={"stream": True},
                               headers={"x-api-key": POD_KEY}) as resp:
            assert resp.status == 200
            text = await resp.text()
        async with client.post(f"{url}/v1/messages", json={},
                               headers={"Authorization": f"Bearer {POD_KEY}"}) as resp:
            assert resp.status == 200
        async with client.get(f"{url}/usage",
                              headers={"Authorization": f"Bearer {POD_KEY}"}) as resp:
            usage = await resp.json()
    assert upstream.keys == [REAL_KEY, REAL_KEY]
    assert upstream.paths[0] == "/v1/messages?beta=true"
    assert "message_stop" in text  # the stream passes through untouched
    assert REAL_KEY not in text
    assert usage == {"input_tokens": 115, "output_tokens": 49, "requests": 2}
    assert proxy.usage.input == 115


async def test_only_the_messages_api_is_forwarded(
        rig: tuple[str, Upstream, CredentialProxy]) -> None:
    url, upstream, _ = rig
    async with aiohttp.ClientSession() as client:
        for path in ("/v1/complete", "/v1/models", "/http://evil.example/v1/messages", "/"):
            async with client.post(f"{url}{path}", json={},
                                   headers={"x-api-key": POD_KEY}) as resp:
                assert resp.status in (404, 405), path
    assert upstream.keys == []


async def test_git_credentials_only_for_the_repository_host_and_the_pod(
        rig: tuple[str, Upstream, CredentialProxy]) -> None:
    url, _, _ = rig
    ask = "protocol=https\nhost={host}\npath=acme/site.git\n\n"
    async with aiohttp.ClientSession() as client:
        async with client.post(f"{url}/git/credential",
                               data=ask.format(host="git.example.com")) as resp:
            assert resp.status == 401
        for host in ("evil.example.com", "git.example.com.evil.example"):
            async with client.post(f"{url}/git/credential", data=ask.format(host=host),
                                   headers={"Authorization": f"Bearer {POD_KEY}"}) as resp:
                assert resp.status == 404
                assert GIT_TOKEN not in await resp.text()
        async with client.post(f"{url}/git/credential",
                               data="protocol=http\nhost=git.example.com\n\n",
                               headers={"Authorization": f"Bearer {POD_KEY}"}) as resp:
            assert resp.status == 404
        async with client.post(f"{url}/git/credential", data=ask.format(host="git.example.com"),
                               headers={"Authorization": f"Bearer {POD_KEY}"}) as resp:
            assert resp.status == 200
            answer = await resp.text()
    assert f"password={GIT_TOKEN}" in answer
    assert "username=x-access-token" in answer


def test_the_pod_key_file_is_kept_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "run" / "token"
    first = load_or_create_token(path)
    assert len(first) >= 32
    assert oct(path.stat().st_mode & 0o777) == "0o640"
    assert load_or_create_token(path) == first


def test_usage_from_streams_in_any_chunking() -> None:
    raw = (b'event: message_start\ndata: {"type":"message_start","message":{"usage":'
           b'{"input_tokens":3,"cache_creation_input_tokens":4,"output_tokens":1}}}\n\n'
           b'event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":9}}'
           b'\n\nevent: ping\ndata: not json\n\n')
    for size in (1, 7, len(raw)):
        meter = StreamMeter()
        for start in range(0, len(raw), size):
            meter.feed(raw[start:start + size])
        assert (meter.tokens.input, meter.tokens.output) == (7, 9)
    assert from_message({"usage": {"input_tokens": 2, "output_tokens": 3}}).output == 3
    assert from_message("nonsense").input == 0
