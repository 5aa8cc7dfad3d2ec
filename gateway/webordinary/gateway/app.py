"""The gateway's request path: parse -> check the link -> resolve the route -> proxy or page."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, Final

import aiohttp
from aiohttp import web
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from webordinary.contracts import environment as env
from webordinary.contracts.links import COOKIE_NAME, LinkKeys, verify
from webordinary.gateway import metrics, pages, paths
from webordinary.gateway.keys import read_keys, reload_keys
from webordinary.gateway.proxy import (
    UpstreamTimeout,
    UpstreamUnavailable,
    forward_http,
    forward_websocket,
    read_cookie,
)
from webordinary.gateway.routes import (
    EDITOR_SLICE_SELECTOR,
    Environment,
    Failed,
    Key,
    RouteTable,
    Serve,
    Starting,
    Suspended,
)
from webordinary.gateway.settings import GatewaySettings
from webordinary.gateway.signals import Signals
from webordinary.kube import Client, Config
from webordinary.kube.watch import Feed, run_feeds

log = logging.getLogger(__name__)

FIRST_VISIT_TTL: Final = 900.0  # forget a wake-on-visit that never got served


def kube_client(url: str | None, token: str | None = None) -> Client:
    """The API server: an explicit URL (local runs), else the in-cluster service account (its
    token read again after every rotation)."""
    try:
        return Client(Config.from_url(url, token) if url else Config.in_cluster())
    except RuntimeError:
        raise RuntimeError("not in a cluster: set WEBORDINARY_GATEWAY_KUBE_API_URL") from None


def feeds(table: RouteTable, namespaces: list[str]) -> list[Feed]:
    """EditEnvironments and editor EndpointSlices, cluster-wide or per namespace."""
    def where(namespace: str | None, group: str, plural: str) -> str:
        scope = f"/namespaces/{namespace}" if namespace else ""
        return f"/apis/{group}{scope}/{plural}"

    out: list[Feed] = []
    scopes: list[str | None] = list(namespaces) or [None]
    for namespace in scopes:
        def replace_environments(items: list[Any], ns: str | None = namespace) -> None:
            table.replace_environments(items, ns)

        def replace_slices(items: list[Any], ns: str | None = namespace) -> None:
            table.replace_slices(items, ns)

        out.append(Feed(
            where(namespace, env.API_VERSION, env.PLURAL), {}, replace_environments,
            table.upsert_environment, table.delete_environment, table.touch,
        ))
        out.append(Feed(
            where(namespace, "discovery.k8s.io/v1", "endpointslices"),
            {"labelSelector": EDITOR_SLICE_SELECTOR}, replace_slices,
            table.upsert_slice, table.delete_slice, table.touch,
        ))
    return out


def is_websocket(request: web.Request) -> bool:
    return (request.headers.get("Upgrade", "").lower() == "websocket"
            and "upgrade" in request.headers.get("Connection", "").lower())


class Gateway:
    """One replica: a routing table kept by watches, and the handler that uses it."""

    def __init__(self, settings: GatewaySettings, kube: Client | None = None) -> None:
        self.settings = settings
        self.table = RouteTable()
        self.kube = kube or kube_client(
            settings.kube_api_url,
            settings.kube_api_token.get_secret_value() if settings.kube_api_token else None)
        self.signals = Signals(self.kube, wake_interval=settings.wake_interval_seconds,
                               activity_interval=settings.activity_interval_seconds)
        self.keys: LinkKeys | None = None
        self.routes_ready = False
        self.upstream: aiohttp.ClientSession | None = None
        self._first_visit: dict[Key, float] = {}
        self._tasks: list[asyncio.Task[None]] = []

    # -- lifecycle ----------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(handler_args={"max_field_size": 16384})
        # Load balancer health checks hit the traffic port; previews live under /session/ only.
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        app.on_startup.append(self._start)
        app.on_shutdown.append(self._shutdown)
        app.on_cleanup.append(self._cleanup)
        return app

    async def _start(self, _: web.Application) -> None:
        if self.settings.signed_links:
            self.keys = read_keys(self.settings.link_keys_dir)  # no keys: refuse to start
        self.upstream = aiohttp.ClientSession(
            auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar(),
            connector=aiohttp.TCPConnector(limit=self.settings.upstream_connections,
                                           limit_per_host=0, ttl_dns_cache=30),
            timeout=aiohttp.ClientTimeout(total=None,
                                          connect=self.settings.connect_timeout_seconds),
        )
        metrics.ROUTES.set_function(lambda: self.table.size)
        metrics.ENVIRONMENTS.set_function(lambda: len(self.table.environments))
        metrics.BACKENDS.set_function(lambda: len(self.table.backends))
        metrics.ROUTES_AGE.set_function(self._routes_age)
        self._tasks = [
            asyncio.create_task(run_feeds(self.kube, feeds(self.table, self.settings.namespaces),
                                          self._routes_listed)),
            asyncio.create_task(self.signals.keep_websockets_active(
                self.table.environments.get)),
        ]
        if self.settings.signed_links:
            self._tasks.append(asyncio.create_task(self._reload_keys()))

    async def _routes_listed(self) -> None:
        self.routes_ready = True
        log.info("routing table ready: %d environments, %d sessions, %d ready editors",
                 len(self.table.environments), self.table.size, len(self.table.backends))

    def _routes_age(self) -> float:
        synced = self.table.synced_at
        return 0.0 if synced is None else time.monotonic() - synced

    async def _reload_keys(self) -> None:
        while True:
            await asyncio.sleep(self.settings.link_keys_reload_seconds)
            self.keys = reload_keys(self.settings.link_keys_dir, self.keys)

    async def _shutdown(self, _: web.Application) -> None:
        self.routes_ready = False

    async def _cleanup(self, _: web.Application) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.signals.drain()
        if self.upstream is not None:
            await self.upstream.close()
        await self.kube.close()

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, _: web.Request) -> web.Response:
        if self.routes_ready:
            return web.Response(text=f"ready: {self.table.size} sessions\n")
        return web.Response(status=503, text="routing table not listed yet\n")

    def health_app(self) -> web.Application:
        """`/healthz`, `/readyz` (routes listed) and `/metrics`, on their own port."""
        async def metrics_page(_: web.Request) -> web.Response:
            return web.Response(body=generate_latest(REGISTRY),
                                headers={"Content-Type": CONTENT_TYPE_LATEST})

        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", metrics_page)
        return app

    # -- requests -----------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        response, outcome = await self._handle(request)
        metrics.REQUESTS.labels(str(response.status), outcome).inc()
        return response

    async def _handle(self, request: web.Request) -> tuple[web.StreamResponse, str]:
        target = paths.parse(request.raw_path)
        if isinstance(target, paths.NotFound):
            return pages.unknown(request, target.reason), "unknown"
        if isinstance(target, paths.Redirect):
            return web.Response(status=308, headers={"Location": target.location}), "redirect"
        thread = target.thread_id
        if self.keys is not None:
            denied = self._check_access(request, thread)
            if denied is not None:
                return denied
        resolution = self.table.resolve(thread)
        if isinstance(resolution, Serve):
            return await self._proxy(request, resolution), "proxied"
        if isinstance(resolution, Starting):
            environment = resolution.environment
            self._first_visit.setdefault(environment.key, time.monotonic())
            self.signals.wake(environment)
            return pages.starting(request, self.settings.starting_retry_seconds), "starting"
        if isinstance(resolution, Failed):
            return pages.failed(request), "failed"
        if isinstance(resolution, Suspended):
            return pages.suspended(request), "suspended"
        return pages.unknown(request, resolution.reason), "unknown"

    def _check_access(
        self, request: web.Request, thread: str
    ) -> tuple[web.StreamResponse, str] | None:
        """None when the request may see the preview; else the answer (redirect or 403)."""
        assert self.keys is not None
        now = time.time()
        cookie = verify(self.keys, read_cookie(request.headers.get("Cookie")), thread, now)
        token = paths.link_token(request.raw_path)
        if token is None:
            metrics.LINK_CHECKS.labels("cookie", cookie.verdict.value).inc()
            return None if cookie.ok else (pages.forbidden(request), "forbidden")
        link = verify(self.keys, token, thread, now)
        metrics.LINK_CHECKS.labels("link", link.verdict.value).inc()
        if not link.ok and not cookie.ok:
            return pages.forbidden(request), "forbidden"
        # Swap the token for a cookie scoped to this session and show the clean address.
        response = web.Response(status=303, headers={
            "Location": paths.without_token(request.raw_path), **pages.NO_STORE})
        if link.ok and link.expires is not None:
            response.set_cookie(
                COOKIE_NAME, token, max_age=max(int(link.expires - now), 1),
                path=paths.cookie_path(thread), secure=self.settings.secure_cookies,
                httponly=True, samesite="Lax",
            )
        return response, "link"

    async def _proxy(self, request: web.Request, serve: Serve) -> web.StreamResponse:
        assert self.upstream is not None
        environment = serve.environment
        base = serve.backend.base_url
        self.signals.activity(environment)
        try:
            if is_websocket(request):
                return await self._websocket(request, environment, base)
            return await forward_http(
                request, self.upstream, base,
                trust_forwarded=self.settings.trust_forwarded_headers,
                read_timeout=self.settings.read_timeout_seconds,
                on_headers=lambda seconds: self._answered(environment, seconds),
            )
        except UpstreamUnavailable:
            return pages.unavailable(request, self.settings.starting_retry_seconds)
        except UpstreamTimeout:
            return pages.timed_out(request)

    def _answered(self, environment: Environment, seconds: float) -> None:
        metrics.UPSTREAM_SECONDS.observe(seconds)
        first = self._first_visit.pop(environment.key, None)
        if first is not None:
            waited = time.monotonic() - first
            if waited < FIRST_VISIT_TTL:
                metrics.WAKE_ON_VISIT_SECONDS.observe(waited)

    async def _websocket(self, request: web.Request, environment: Environment,
                         base: str) -> web.StreamResponse:
        assert self.upstream is not None
        self.signals.websocket_opened(environment)
        metrics.WEBSOCKETS_OPEN.inc()
        try:
            return await forward_websocket(
                request, self.upstream, base,
                trust_forwarded=self.settings.trust_forwarded_headers,
                idle_timeout=self.settings.websocket_idle_seconds,
            )
        finally:
            metrics.WEBSOCKETS_OPEN.dec()
            self.signals.websocket_closed(environment)
