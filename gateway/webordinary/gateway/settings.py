"""Gateway settings, read from WEBORDINARY_GATEWAY_* environment variables (the chart sets them)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from webordinary.contracts.envlists import COMMA_SEPARATED


class GatewaySettings(BaseSettings):
    """Everything one gateway replica needs; it keeps no state of its own."""

    model_config = SettingsConfigDict(
        env_prefix="WEBORDINARY_GATEWAY_", extra="forbid", frozen=True,
    )

    # Where EditEnvironments live: empty watches every namespace, else a comma-separated list.
    namespaces: Annotated[list[str], NoDecode, COMMA_SEPARATED] = Field(default_factory=list)
    # Local runs against the emulator: http://127.0.0.1:PORT (no TLS). Unset: in-cluster
    # ServiceAccount credentials.
    kube_api_url: str | None = None
    # Bearer token for kube_api_url (`./dev up`: the emulator maps it to the gateway's
    # ServiceAccount, so the chart's admission policies apply as on a cluster).
    kube_api_token: SecretStr | None = None

    host: str = "0.0.0.0"
    port: Annotated[int, Field(ge=0, le=65535)] = 8080
    metrics_host: str = "0.0.0.0"
    metrics_port: Annotated[int, Field(ge=0, le=65535)] | None = 9090

    # Signed links: off only for private networks where anyone who can reach the gateway may
    # see every preview. On: a Secret with `current` (and `previous`) mounted at keys_dir.
    signed_links: bool = True
    link_keys_dir: Path = Path("/etc/webordinary/link-keys")
    link_keys_reload_seconds: Annotated[float, Field(gt=0)] = 30.0
    # Cookies are `Secure` unless this is false (plain-HTTP local runs only).
    secure_cookies: bool = True

    # Proxy: a slow or dead editor must not hold a connection forever.
    connect_timeout_seconds: Annotated[float, Field(gt=0)] = 5.0
    # Between two reads of an upstream response (a dev server compiling a page can be slow).
    read_timeout_seconds: Annotated[float, Field(gt=0)] = 120.0
    # Idle websockets (HMR) are closed after this long without any frame either way.
    websocket_idle_seconds: Annotated[float, Field(gt=0)] = 3600.0
    upstream_connections: Annotated[int, Field(ge=1)] = 512
    # X-Forwarded-For/Proto from the load balancer in front are kept (appended to); off
    # when clients can reach the gateway directly.
    trust_forwarded_headers: bool = True

    # Wake on visit and activity: one wake request per environment per `wake_interval`, one
    # activity stamp per environment per `activity_interval`.
    wake_interval_seconds: Annotated[float, Field(gt=0)] = 30.0
    activity_interval_seconds: Annotated[float, Field(ge=60)] = 60.0
    starting_retry_seconds: Annotated[int, Field(ge=1, le=60)] = 3

    log_level: str = "INFO"

    @field_validator("kube_api_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value
