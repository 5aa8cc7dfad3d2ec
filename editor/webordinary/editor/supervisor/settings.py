"""The supervisor container's settings (WEBORDINARY_PREVIEW_*)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from webordinary.contracts.editor_env import PREVIEW_PORT
from webordinary.contracts.envlists import COMMA_SEPARATED

CONTROL_PORT = 4322
SUPERVISOR_METRICS_PORT = 9091


class SupervisorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WEBORDINARY_PREVIEW_", extra="ignore")

    sessions: Path = Path("/workspace/sessions")
    host: str = "0.0.0.0"
    port: Annotated[int, Field(ge=0, le=65535)] = PREVIEW_PORT
    control_port: Annotated[int, Field(ge=0, le=65535)] = CONTROL_PORT
    metrics_port: Annotated[int, Field(ge=0, le=65535)] = SUPERVISOR_METRICS_PORT
    # Hosts the router and Vite answer for (besides loopback); empty: any (local runs).
    allowed_hosts: Annotated[list[str], NoDecode, COMMA_SEPARATED] = Field(
        default_factory=list)
    max_active: Annotated[int, Field(ge=1)] = 2
    standby: bool = True
    tmp: Path = Path("/tmp")
    build_timeout_seconds: Annotated[float, Field(gt=0)] = 300.0
    log_level: str = "INFO"
