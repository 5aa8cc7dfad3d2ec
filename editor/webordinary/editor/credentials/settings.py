"""What the credential proxy is configured with (its container's environment)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import urlparse

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from webordinary.contracts.editor_env import SECRET_ENV_ANTHROPIC_API_KEY, SECRET_ENV_GIT_TOKEN

DEFAULT_PORT = 8099


class ProxySettings(BaseSettings):
    """WEBORDINARY_CREDENTIALS_*, plus the two secrets under their usual names."""

    model_config = SettingsConfigDict(env_prefix="WEBORDINARY_CREDENTIALS_", extra="ignore",
                                      populate_by_name=True)

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = DEFAULT_PORT
    metrics_port: Annotated[int, Field(ge=0, le=65535)] | None = 9092
    # Health for the kubelet's probes (pod IP in a cluster; `./dev up` keeps it on loopback).
    metrics_host: str = "0.0.0.0"
    # Where the pod-local placeholder key is written (a volume shared with the editor only).
    token_file: Path = Path("/run/webordinary/credentials/token")
    # The only API the proxy forwards to.
    api_base_url: str = "https://api.anthropic.com"
    api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices(SECRET_ENV_ANTHROPIC_API_KEY,
                                                    "WEBORDINARY_CREDENTIALS_API_KEY"))
    git_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices(SECRET_ENV_GIT_TOKEN,
                                                    "WEBORDINARY_CREDENTIALS_GIT_TOKEN"))
    git_username: str = "x-access-token"
    # The repository URL: credentials are answered for its host only (https).
    repository_url: str = Field(
        default="", validation_alias=AliasChoices("WEBORDINARY_REPOSITORY_URL",
                                                  "WEBORDINARY_CREDENTIALS_REPOSITORY_URL"))
    environment: str = Field(
        default="", validation_alias=AliasChoices("WEBORDINARY_ENVIRONMENT",
                                                  "WEBORDINARY_CREDENTIALS_ENVIRONMENT"))
    request_timeout_seconds: Annotated[float, Field(gt=0)] = 600.0
    log_level: str = "INFO"

    def git_host(self) -> str | None:
        """host[:port] of an https repository URL; None for any other scheme."""
        parsed = urlparse(self.repository_url)
        if parsed.scheme != "https" or not parsed.hostname:
            return None
        return parsed.hostname.lower() + (f":{parsed.port}" if parsed.port else "")
