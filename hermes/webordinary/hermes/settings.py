"""Hermes' configuration, read from WEBORDINARY_HERMES_* environment variables.

The Helm chart templates exactly these fields; keep names and defaults meaningful.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class HermesSettings(BaseSettings):
    """Everything Hermes needs to run, in the cluster or locally."""

    model_config = SettingsConfigDict(env_prefix="WEBORDINARY_HERMES_", extra="forbid")

    namespace: str = "webordinary"
    """Namespace where EditEnvironments live (Hermes creates them there)."""
    kube_api_url: str | None = None
    """API server URL for local runs (e.g. the emulator); unset means in-cluster config."""
    kube_api_token: SecretStr | None = None
    """Bearer token for kube_api_url (`./dev up`: the emulator maps it to Hermes' ServiceAccount,
    so the chart's admission policies apply as on a cluster)."""

    aws_region: str = "us-east-1"
    aws_endpoint_url: str | None = None
    """moto or another local endpoint; unset means real AWS."""
    aws_threads: Annotated[int, Field(ge=4, le=1024)] = 64
    """Threads for the blocking AWS calls (SES, S3); SQS is asynchronous and needs none."""

    inbound_queue_url: str | None = None
    """SQS queue fed by SES receipt notifications (SNS-wrapped or raw); unset disables it."""
    inbound_wait_seconds: Annotated[int, Field(ge=0, le=20)] = 10
    inbound_visibility_seconds: Annotated[int, Field(ge=10, le=43200)] = 300
    """How long a postponed mail waits before Hermes tries it again."""
    inbound_max_receives: Annotated[int, Field(ge=1, le=100)] = 6
    """After this many postponed attempts the user gets a failure reply instead of silence."""
    inbound_dlq_url: str | None = None
    """Where mails that cannot be handled (parse limits, bugs) go, with their cause as a
    message attribute; unset: they are logged in full and removed."""

    parse_workers: Annotated[int, Field(ge=1, le=64)] = 2
    """Worker processes that parse mail (the only work whose cost a stranger chooses)."""
    parse_timeout_seconds: Annotated[float, Field(gt=0)] = 5.0
    """A mail whose parse takes longer is answered as unreadable; its worker is replaced."""
    parse_memory_mib: Annotated[int, Field(ge=32)] = 128
    """Address space a parse worker may add (RLIMIT_AS) before a mail fails with MemoryError
    (the largest mail taken in, 10 MB with a 9 MB attachment, peaks near 55 MiB; two workers at
    the limit plus Hermes itself stay inside the chart's 512 Mi)."""
    s3_bucket: str | None = None
    """Bucket for attachments too big to travel inline in a command."""
    s3_attachments_prefix: str = "attachments/"

    from_address: str = "edit@webordinary.dev"
    """Our sender address (must be a verified SES identity); mail from it is never acted on."""
    from_name: str = "Webordinary"
    preview_base_url: str = "https://edit.webordinary.dev"
    """Preview links are `{preview_base_url}/session/{threadId}/`."""
    preview_link_keys_dir: Path | None = None
    """The mounted link-key Secret (`current`, `previous`): links carry a signed, expiring
    token the gateway checks. Unset: plain links (signing off, private networks only)."""
    preview_link_ttl_seconds: Annotated[int, Field(ge=300)] = 14 * 24 * 3600
    ack_enabled: bool = True
    """Send a short acknowledgement with the preview link as soon as the command is queued."""

    auth_policy: Literal["strict", "dmarc"] = "strict"
    """strict: SPF, DKIM and DMARC must all pass; dmarc: DMARC plus SPF or DKIM must pass."""
    max_message_bytes: Annotated[int, Field(gt=0)] = 10 * 1024 * 1024
    max_attachments: Annotated[int, Field(ge=0, le=20)] = 10
    inline_attachments_max_bytes: Annotated[int, Field(ge=0)] = 150 * 1024
    """Attachments (decoded) ride inline in the command up to this total; the rest go to S3."""
    unknown_sender_replies_per_hour: Annotated[int, Field(ge=0)] = 1

    routing_file: Path = Path("/etc/webordinary/routing/routing.yaml")
    """The SRE-edited routing config (ConfigMap key `routing.yaml`), re-read when it changes."""
    journal_path: Path | None = None
    """JSON-lines journal of commands and replies; unset keeps it in memory only."""
    journal_retention_days: Annotated[int, Field(ge=1)] = 30
    journal_max_thread_keys: Annotated[int, Field(ge=1000)] = 500_000
    """Thread registry size bound: the oldest keys are forgotten first."""
    journal_max_records: Annotated[int, Field(ge=1000)] = 200_000
    """Bound on remembered commands and replies each: the oldest are forgotten first."""

    queue_wait_seconds: Annotated[float, Field(gt=0)] = 180.0
    """How long to wait for an environment's input queue URL before retrying the email later."""
    results_wait_seconds: Annotated[int, Field(ge=1, le=20)] = 20
    """Long-poll wait on an output queue: a result is returned as soon as it lands."""
    results_visibility_seconds: Annotated[int, Field(ge=10, le=43200)] = 60
    """A result whose reply failed is tried again after this long (then the DLQ redrive)."""
    results_dlq_interval_seconds: Annotated[float, Field(gt=0)] = 60.0
    """How often an awake environment's DLQ is swept (a receive that does not wait)."""
    results_grace_seconds: Annotated[float, Field(ge=0)] = 300.0
    """How long a Sleeping environment's queues are still polled after it was last awake;
    keep it above the editor pod's termination grace period (results written on the way
    down)."""
    environments_list_seconds: Annotated[float, Field(gt=0)] = 10.0
    """How often EditEnvironments are listed (phase and queues of each)."""
    activity_interval_seconds: Annotated[float, Field(ge=0)] = 30.0
    """At most one `last-activity` stamp per environment this often (the newest time held back
    is written when the interval ends, so the operator's sleep deadline stays exact)."""

    smtp_enabled: bool = False
    """Local mode: accept mail over SMTP (aiosmtpd) instead of / besides SES."""
    smtp_host: str = "127.0.0.1"
    smtp_port: Annotated[int, Field(ge=0, le=65535)] = 2525
    smtp_trusted_networks: list[str] = Field(default_factory=lambda: ["127.0.0.0/8", "::1/128"])
    smtp_outbound_host: str | None = None
    """Send replies over SMTP to this host instead of SES (local mode)."""
    smtp_outbound_port: Annotated[int, Field(ge=1, le=65535)] = 25

    metrics_host: str = "0.0.0.0"
    metrics_port: Annotated[int, Field(ge=0, le=65535)] = 9090
    """Prometheus `/metrics` and `/healthz` are served here (0 picks a free port)."""
    log_level: str = "INFO"
    # json: one JSON object per line (log pipelines); text: for people.
    log_format: Literal["text", "json"] = "text"

    @field_validator(
        "kube_api_url", "aws_endpoint_url", "inbound_queue_url", "inbound_dlq_url", "s3_bucket",
        "smtp_outbound_host", "journal_path", "preview_link_keys_dir", mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """Templated environments render unset values as empty strings."""
        return None if value == "" else value
