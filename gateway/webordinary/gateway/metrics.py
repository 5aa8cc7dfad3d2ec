"""Gateway metrics (default registry): requests, upstream latency, wakes, websockets, routes."""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge, Histogram

REQUESTS: Final = Counter(
    "webordinary_gateway_requests",
    "Requests by HTTP status and outcome (proxied, starting, forbidden, unknown, ...)",
    ["code", "outcome"],
)
UPSTREAM_SECONDS: Final = Histogram(
    "webordinary_gateway_upstream_seconds",
    "Seconds from sending a request to an editor to its response headers",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
WAKE_ON_VISIT_SECONDS: Final = Histogram(
    "webordinary_gateway_wake_on_visit_seconds",
    "Seconds from the first visit of a sleeping environment to its first proxied byte",
    buckets=(1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 90, 120, 300),
)
WAKE_REQUESTS: Final = Counter(
    "webordinary_gateway_wake_requests", "Wake requests written, by outcome", ["outcome"]
)
ACTIVITY_WRITES: Final = Counter(
    "webordinary_gateway_activity_writes", "Activity stamps written, by outcome", ["outcome"]
)
LINK_CHECKS: Final = Counter(
    "webordinary_gateway_link_checks", "Signed link and cookie checks by verdict",
    ["source", "verdict"],
)
WEBSOCKETS_OPEN: Final = Gauge(
    "webordinary_gateway_websockets_open", "Websockets (HMR) currently proxied"
)
ROUTES: Final = Gauge("webordinary_gateway_routes", "Thread ids in the routing table")
ENVIRONMENTS: Final = Gauge(
    "webordinary_gateway_environments", "EditEnvironments in the routing table"
)
BACKENDS: Final = Gauge(
    "webordinary_gateway_backends", "Editor services with a ready preview endpoint"
)
ROUTES_AGE: Final = Gauge(
    "webordinary_gateway_routes_age_seconds",
    "Seconds since the routing table last heard from the API server (event or bookmark)",
)
