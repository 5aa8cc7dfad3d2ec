"""Preview metrics (default registry) and the health/metrics HTTP app."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from aiohttp import web
from prometheus_client import REGISTRY, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

ACTIVE_SERVERS: Final = Gauge(
    "webordinary_preview_active_servers", "Astro dev servers running or starting"
)
STARTS: Final = Counter(
    "webordinary_preview_starts", "Astro dev server starts by outcome", ["outcome"]
)
CRASHES: Final = Counter(
    "webordinary_preview_crashes", "Astro dev servers that exited without being stopped"
)
WARM_STARTS: Final = Counter(
    "webordinary_preview_warm_starts", "Dev server starts served by the warm standby process"
)
EVICTIONS: Final = Counter(
    "webordinary_preview_evictions", "Dev servers stopped to make room (LRU cap)"
)
START_SECONDS: Final = Histogram(
    "webordinary_preview_start_seconds",
    "Seconds from launching a dev server to its first answer",
    buckets=(0.5, 1, 1.5, 2, 2.5, 3, 4, 5, 7.5, 10, 15, 30, 60),
)
REQUESTS: Final = Counter(
    "webordinary_preview_requests",
    "Requests to the preview entry point by outcome",
    ["outcome"],
)


def health_app(is_ready: Callable[[], bool]) -> web.Application:
    """`/healthz` (the process answers), `/readyz` (the editor says ready), `/metrics`."""

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        if is_ready():
            return web.Response(text="ready\n")
        return web.Response(status=503, text="not ready\n")

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app
