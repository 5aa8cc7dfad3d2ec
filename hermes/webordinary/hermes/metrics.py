"""Prometheus metrics of Hermes (own registry, so several instances can live in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.received = Counter(
            "hermes_emails_received", "Mails received", ["source"], registry=r
        )
        self.rejected = Counter(
            "hermes_emails_rejected", "Mails not turned into a command, by reason", ["reason"],
            registry=r,
        )
        self.duplicates = Counter(
            "hermes_duplicates", "Deliveries recognised as already handled", ["kind"], registry=r
        )
        self.commands = Counter("hermes_commands_sent", "Commands queued", registry=r)
        self.replies = Counter("hermes_replies_sent", "Reply mails sent", ["kind"], registry=r)
        self.errors = Counter("hermes_errors", "Errors by stage", ["stage"], registry=r)
        self.orphans = Counter(
            "hermes_results_orphaned", "Results/DLQ entries with no known command", registry=r
        )
        self.email_to_command = Histogram(
            "hermes_email_to_command_seconds", "Mail received to command queued",
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.email_to_reply = Histogram(
            "hermes_email_to_reply_seconds", "Mail received to the result reply sent",
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.watched_queues = Gauge(
            "hermes_watched_queues", "Environments whose output queue and DLQ are polled",
            registry=r,
        )
        self.dead_letters = Counter(
            "hermes_dead_letters", "Messages that could not be handled, by cause", ["cause"],
            registry=r,
        )
        self.parse_seconds = Histogram(
            "hermes_parse_cpu_seconds", "CPU time of one mail's parse in a worker",
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5), registry=r,
        )

        self.result_tokens = Counter(
            "hermes_result_tokens", "Model tokens the editors reported in results",
            ["environment", "direction"], registry=r,
        )
        self.result_cost_usd = Counter(
            "hermes_result_cost_usd", "Model cost (US dollars) the editors reported in results",
            ["environment"], registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
