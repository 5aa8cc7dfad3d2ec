"""Editor metrics in the default registry (served with the previews' /metrics)."""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge, Histogram

COMMANDS: Final = Counter(
    "webordinary_editor_commands", "Commands answered, by type and result status",
    ["type", "status"],
)
REPLAYS: Final = Counter(
    "webordinary_editor_replays", "Redelivered commands answered from the journal"
)
RETRIES: Final = Counter(
    "webordinary_editor_retries", "Transient failures left on the queue for redelivery"
)
BUSY: Final = Gauge("webordinary_editor_busy", "1 while a command runs")
JOB_SECONDS: Final = Histogram(
    "webordinary_editor_job_seconds", "Seconds from a command's start to its answer", ["type"],
    buckets=(1, 2, 5, 10, 30, 60, 120, 300, 600, 900),
)
INTERRUPT_SECONDS: Final = Histogram(
    "webordinary_editor_interrupt_seconds",
    "Seconds from a new message being accepted to the running job having stopped",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 1.5, 2, 5, 10),
)
PUSHES: Final = Counter(
    "webordinary_editor_pushes",
    "Pushes of a session branch, by outcome (pushed, conflict, failed)", ["outcome"],
)
PUSH_SECONDS: Final = Histogram(
    "webordinary_editor_push_seconds", "Seconds to get a session branch into the repository",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
LOCAL_WRITE_ERRORS: Final = Counter(
    "webordinary_editor_local_write_errors",
    "Failed writes to the volume, by what was written (journal, ledger, work)", ["what"],
)
DISK_FULL: Final = Counter(
    "webordinary_editor_disk_full", "Commands or records that failed because the volume is full"
)
TOKENS: Final = Counter(
    "webordinary_editor_tokens", "Model tokens used by agent runs", ["environment", "direction"],
)
COST_USD: Final = Counter(
    "webordinary_editor_cost_usd", "Model cost of agent runs in US dollars", ["environment"],
)
MONTH_COST_USD: Final = Gauge(
    "webordinary_editor_month_cost_usd", "Model cost so far this calendar month (UTC)",
    ["environment"],
)
BUDGET_REFUSALS: Final = Counter(
    "webordinary_editor_budget_refusals", "Edits refused because the monthly budget is used up",
    ["environment"],
)
