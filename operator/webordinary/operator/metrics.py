"""Prometheus metrics of the operator (own registry, so several operators can share a process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from webordinary.contracts.environment import Phase


class Metrics:
    """Reconcile duration and errors, environments by phase, sleep and wake."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.duration = Histogram(
            "webordinary_operator_reconcile_duration_seconds",
            "Time of one reconcile of an EditEnvironment.",
            ["trigger"],
            registry=self.registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.errors = Counter(
            "webordinary_operator_reconcile_errors_total",
            "Reconciles that did not reach the desired state, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.environments = Gauge(
            "webordinary_operator_environments",
            "EditEnvironments known to this operator, by phase.",
            ["phase"],
            registry=self.registry,
        )
        self.wake_latency = Histogram(
            "webordinary_operator_wake_latency_seconds",
            "From a wake request (or the signal that woke it) to the editor available.",
            ["reason"],
            registry=self.registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600),
        )
        self.starting = Histogram(
            "webordinary_operator_starting_seconds",
            "Time environments spent in phase Starting (scale-up to editor available).",
            registry=self.registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600),
        )
        self.wakes = Counter(
            "webordinary_operator_wakes_total",
            "Editors scaled up, by what woke them (WakeRequest, Activity, Message, Created).",
            ["reason"],
            registry=self.registry,
        )
        self.sleeps = Counter(
            "webordinary_operator_sleeps_total",
            "Editors scaled to zero, by reason (Idle, Suspended).",
            ["reason"],
            registry=self.registry,
        )
        self.stuck = Gauge(
            "webordinary_operator_environments_stuck_starting",
            "Environments woken longer than the start timeout ago and still not available.",
            registry=self.registry,
        )
        self.degraded = Gauge(
            "webordinary_operator_environments_degraded",
            "EditEnvironments whose Degraded condition is True.",
            registry=self.registry,
        )
        self.loop_lag = Histogram(
            "webordinary_operator_event_loop_lag_seconds",
            "How much later than asked the event loop ran a timer (4 per second): whatever "
            "every wake and deadline waits behind.",
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self._degraded: set[str] = set()
        self._phases: dict[str, str] = {}
        for phase in Phase:
            self.environments.labels(phase=str(phase)).set(0)

    def set_phase(self, uid: str, phase: Phase | None) -> None:
        """Track one environment's phase (None: forget it, e.g. after deletion)."""
        before = self._phases.pop(uid, None)
        if before is not None:
            self.environments.labels(phase=before).dec()
        if phase is not None:
            self._phases[uid] = str(phase)
            self.environments.labels(phase=str(phase)).inc()

    def set_degraded(self, uid: str, degraded: bool) -> None:
        if degraded:
            self._degraded.add(uid)
        else:
            self._degraded.discard(uid)
        self.degraded.set(len(self._degraded))

    def serve(self, host: str, port: int) -> None:
        start_http_server(port, addr=host, registry=self.registry)
