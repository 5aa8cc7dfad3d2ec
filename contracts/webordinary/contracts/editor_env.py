"""The env-var contract between the operator (writes it into the Deployment) and the editor."""

from __future__ import annotations

from typing import Annotated, Final

from pydantic import BaseModel, ConfigDict, Field

ENV_PREFIX: Final = "WEBORDINARY_"
PREVIEW_PORT: Final = 4321
METRICS_PORT: Final = 9090
WORKSPACE_MOUNT: Final = "/workspace"
# Secrets are not part of this model: the Deployment maps them with secretKeyRef.
SECRET_ENV_ANTHROPIC_API_KEY: Final = "ANTHROPIC_API_KEY"
SECRET_ENV_GIT_TOKEN: Final = "WEBORDINARY_GIT_TOKEN"


class EditorEnv(BaseModel):
    """Everything an editor needs to know about its environment, as WEBORDINARY_* variables."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    environment: str
    namespace: str
    client_id: str
    project_id: str
    user_id: str
    container_id: str
    input_queue_url: str
    output_queue_url: str
    dlq_url: str
    workspace: str = WORKSPACE_MOUNT
    repository_url: str
    repository_branch: str = "main"
    idle_timeout_seconds: Annotated[int, Field(gt=0)] = 1200
    preview_port: int = PREVIEW_PORT
    metrics_port: int = METRICS_PORT
    aws_region: str = "us-east-1"
    sqs_endpoint_url: str | None = None
    push_after_edit: bool = True
    monthly_budget_usd: Annotated[float, Field(ge=0)] | None = None

    def to_env(self) -> dict[str, str]:
        """WEBORDINARY_FIELD_NAME -> value; unset optionals are left out."""
        return {
            f"{ENV_PREFIX}{key.upper()}": str(value)
            for key, value in self.model_dump().items()
            if value is not None
        }

    @classmethod
    def from_env(cls, environ: dict[str, str]) -> EditorEnv:
        """Read the contract back (the editor side); unknown WEBORDINARY_* vars are ignored."""
        fields = {
            name: environ[f"{ENV_PREFIX}{name.upper()}"]
            for name in cls.model_fields
            if f"{ENV_PREFIX}{name.upper()}" in environ
        }
        return cls.model_validate(fields)
