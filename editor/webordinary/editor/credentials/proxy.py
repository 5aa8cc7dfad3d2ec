"""The credential proxy's HTTP side: forward Messages API calls, answer git credential requests.

Callers prove they are the editor with the pod-local placeholder key (written to a file on a
volume only the editor and this container mount); the real key and token never leave this
process except towards their own hosts.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
import time
from pathlib import Path
from typing import Final

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from prometheus_client import Counter, Histogram

from webordinary.editor.credentials.settings import ProxySettings
from webordinary.editor.credentials.usage import StreamMeter, Tokens, from_message

log = logging.getLogger(__name__)

TOKENS: Final = Counter(
    "webordinary_credentials_tokens", "Model tokens metered by the credential proxy",
    ["environment", "kind"])
REQUESTS: Final = Counter(
    "webordinary_credentials_requests", "Requests to the credential proxy by route and outcome",
    ["route", "outcome"])
OVERHEAD: Final = Histogram(
    "webordinary_credentials_overhead_seconds",
    "Time the proxy adds before an API request leaves for the upstream",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1))
# What the proxy forwards: the Messages API and nothing else.
API_PATHS: Final = ("/v1/messages", "/v1/messages/count_tokens")
DROP_REQUEST: Final = frozenset({
    "host", "x-api-key", "authorization", "connection", "keep-alive", "proxy-authorization",
    "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "content-length",
    "cookie",
})
DROP_RESPONSE: Final = frozenset({
    "connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding",
    "set-cookie",
})
TOKEN_KEY: Final = web.AppKey("token", str)


def load_or_create_token(path: Path) -> str:
    """The pod's placeholder key: kept across restarts of this container (same volume)."""
    if path.is_file():
        existing = path.read_text().strip()
        if len(existing) >= 32:
            return existing
    token = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    with os.fdopen(fd, "w") as fh:
        fh.write(token)
    os.chmod(scratch, 0o640)
    os.replace(scratch, path)
    return token


def presented(request: web.Request) -> str:
    """The key a caller presents: `x-api-key` (the CLI) or a bearer token (the git helper)."""
    value = request.headers.get("x-api-key")
    if value:
        return value
    auth = request.headers.get("Authorization", "")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else ""


def parse_credential_request(text: str) -> dict[str, str]:
    """git's credential format: `key=value` lines, up to an empty line."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            break
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


class CredentialProxy:
    """The aiohttp application and the usage it has metered."""

    def __init__(self, settings: ProxySettings, token: str) -> None:
        self.settings = settings
        self.token = token
        self.usage = Tokens()
        self.api_requests = 0
        self._client: aiohttp.ClientSession | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_post("/v1/messages", self._api)
        app.router.add_post("/v1/messages/count_tokens", self._api)
        app.router.add_post("/git/credential", self._git)
        app.router.add_get("/usage", self._usage)
        app.router.add_get("/healthz", self._healthz)
        app.on_startup.append(self._open)
        app.on_cleanup.append(self._close)
        return app

    async def _open(self, _: web.Application) -> None:
        self._client = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.settings.request_timeout_seconds,
                                          sock_connect=10),
            auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar())

    async def _close(self, _: web.Application) -> None:
        if self._client is not None:
            await self._client.close()

    def _allowed(self, request: web.Request) -> bool:
        return hmac.compare_digest(presented(request).encode(), self.token.encode())

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _usage(self, request: web.Request) -> web.Response:
        if not self._allowed(request):
            return _denied("usage")
        return web.json_response({"input_tokens": self.usage.input,
                                  "output_tokens": self.usage.output,
                                  "requests": self.api_requests})

    async def _api(self, request: web.Request) -> web.StreamResponse:
        began = time.perf_counter()
        if not self._allowed(request):
            return _denied("api", api=True)
        if self.settings.api_key is None:
            REQUESTS.labels("api", "no_key").inc()
            return web.json_response({"type": "error", "error": {
                "type": "authentication_error",
                "message": "the credential proxy has no API key configured"}}, status=401)
        assert self._client is not None
        headers: CIMultiDict[str] = CIMultiDict(
            (k, v) for k, v in request.headers.items() if k.lower() not in DROP_REQUEST)
        headers["x-api-key"] = self.settings.api_key.get_secret_value()
        url = self.settings.api_base_url.rstrip("/") + request.path
        body = await request.read()
        OVERHEAD.observe(time.perf_counter() - began)
        try:
            upstream = await self._client.post(url, params=request.query, data=body,
                                               headers=headers, allow_redirects=False)
        except (aiohttp.ClientError, TimeoutError) as exc:
            REQUESTS.labels("api", "upstream_error").inc()
            log.warning("upstream API not reachable: %s", exc)
            return web.json_response({"type": "error", "error": {
                "type": "api_error", "message": "the model API is not reachable"}}, status=502)
        self.api_requests += 1
        async with upstream:
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for name, value in upstream.headers.items():
                if name.lower() not in DROP_RESPONSE:
                    response.headers.add(name, value)
            streamed = "text/event-stream" in upstream.headers.get("Content-Type", "")
            await response.prepare(request)
            meter = StreamMeter()
            collected = bytearray()
            async for chunk in upstream.content.iter_any():
                if streamed:
                    meter.feed(chunk)
                elif len(collected) < 8 * 2**20:
                    collected.extend(chunk)
                await response.write(chunk)
            await response.write_eof()
        tokens = meter.tokens if streamed else _json_tokens(bytes(collected))
        self._count(tokens)
        REQUESTS.labels("api", str(upstream.status)).inc()
        return response

    def _count(self, tokens: Tokens) -> None:
        self.usage.add(tokens)
        environment = self.settings.environment or "unknown"
        TOKENS.labels(environment, "input").inc(tokens.input)
        TOKENS.labels(environment, "output").inc(tokens.output)

    async def _git(self, request: web.Request) -> web.Response:
        if not self._allowed(request):
            return _denied("git")
        wanted = parse_credential_request(await request.text())
        host = self.settings.git_host()
        asked = wanted.get("host", "").lower()
        if (self.settings.git_token is None or host is None or wanted.get("protocol") != "https"
                or asked != host):
            REQUESTS.labels("git", "refused").inc()
            log.warning("git credentials refused for %s://%s", wanted.get("protocol"), asked)
            return web.Response(status=404, text="")
        REQUESTS.labels("git", "ok").inc()
        answer = (f"protocol=https\nhost={host}\nusername={self.settings.git_username}\n"
                  f"password={self.settings.git_token.get_secret_value()}\n")
        return web.Response(text=answer)


def _json_tokens(raw: bytes) -> Tokens:
    import json

    try:
        return from_message(json.loads(raw))
    except ValueError:
        return Tokens()


def _denied(route: str, *, api: bool = False) -> web.Response:
    REQUESTS.labels(route, "denied").inc()
    if api:
        return web.json_response({"type": "error", "error": {
            "type": "authentication_error", "message": "invalid pod key"}}, status=401)
    return web.Response(status=401, text="")
