"""Editor settings: the operator's env contract (EditorEnv) plus editor-only knobs and secrets."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from webordinary.contracts.editor_env import (
    SECRET_ENV_ANTHROPIC_API_KEY,
    SECRET_ENV_GIT_TOKEN,
    EditorEnv,
)

SITE_TOOLS = ["Read", "Edit", "Write", "Glob", "Grep"]


class EditorSettings(BaseSettings):
    """Knobs that are the editor's own business (WEBORDINARY_EDITOR_*), plus the two secrets."""

    model_config = SettingsConfigDict(env_prefix="WEBORDINARY_EDITOR_", extra="ignore")

    model: str | None = None
    anthropic_base_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("WEBORDINARY_EDITOR_ANTHROPIC_BASE_URL",
                                      "ANTHROPIC_BASE_URL"),
    )
    anthropic_api_key: SecretStr | None = Field(
        default=None, validation_alias=SECRET_ENV_ANTHROPIC_API_KEY)
    git_token: SecretStr | None = Field(default=None, validation_alias=SECRET_ENV_GIT_TOKEN)
    # The split pod: the credential proxy (model API base URL and git credentials, with the
    # pod-local placeholder key in the file) and the preview supervisor (customer code).
    credentials_url: str | None = None
    credentials_token_file: Path | None = None
    supervisor_url: str | None = None
    allowed_tools: list[str] = Field(default_factory=lambda: list(SITE_TOOLS))
    job_timeout_seconds: Annotated[float, Field(gt=0)] = 900.0
    build_timeout_seconds: Annotated[float, Field(gt=0)] = 300.0
    interrupt_grace_seconds: Annotated[float, Field(gt=0)] = 5.0
    poll_wait_seconds: Annotated[int, Field(ge=0, le=20)] = 20
    visibility_timeout_seconds: Annotated[int, Field(ge=10, le=43200)] = 120
    # Received messages start with a short lease, extended as soon as they are accepted: a
    # long poll orphaned by a stopping pod then hands its message back within seconds.
    receive_visibility_seconds: Annotated[int, Field(ge=1, le=60)] = 5
    retry_backoff_seconds: Annotated[int, Field(ge=0, le=900)] = 10
    max_attempts: Annotated[int, Field(ge=1)] = 3
    # Pushing a session branch: tries per push (transient failures), first backoff (doubling).
    push_attempts: Annotated[int, Field(ge=1, le=10)] = 3
    push_backoff_seconds: Annotated[float, Field(ge=0, le=60)] = 1.0
    shutdown_grace_seconds: Annotated[float, Field(gt=0)] = 25.0
    max_previews: Annotated[int, Field(ge=1)] = 2
    max_agents: Annotated[int, Field(ge=1)] = 2
    s3_endpoint_url: str | None = None
    max_attachment_bytes: Annotated[int, Field(gt=0)] = 25 * 2**20
    previews_enabled: bool = True
    preview_host: str = "0.0.0.0"
    npm_install: bool = True
    cli_path: str | None = None
    cli_max_retries: Annotated[int, Field(ge=0)] | None = None
    git_author_name: str = "Webordinary Editor"
    git_author_email: str = "editor@webordinary.invalid"
    log_level: str = "INFO"


@dataclass(frozen=True)
class Workspace:
    """The layout on the environment's volume (the previews rely on it too)."""

    root: Path

    @property
    def repo(self) -> Path:
        return self.root / "repo"

    @property
    def sessions(self) -> Path:
        return self.root / "sessions"

    @property
    def node_modules(self) -> Path:
        return self.sessions / "node_modules"

    @property
    def claude(self) -> Path:
        return self.root / ".claude"

    @property
    def journal(self) -> Path:
        return self.root / ".journal"

    @property
    def ledger(self) -> Path:
        return self.root / ".usage" / "ledger.json"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def npm_cache(self) -> Path:
        return self.root / ".cache" / "npm"

    def worktree(self, thread_id: str) -> Path:
        return self.sessions / f"thread-{thread_id}"

    def create(self) -> None:
        for path in (self.sessions, self.claude, self.journal, self.tmp, self.npm_cache):
            path.mkdir(parents=True, exist_ok=True)
        # The editor's own state is its own: customer code (another uid sharing the volume's
        # group) may read the session worktrees, nothing else.
        for private in (self.claude, self.journal, self.tmp, self.root / ".cache"):
            private.chmod(0o700)

    def share_with_previews(self) -> None:
        """Folders the preview container writes (group-writable, setgid): node_modules and
        the previews' state; the sessions folder itself stays the editor's."""
        self.sessions.chmod(0o2755)
        for shared in (self.node_modules, self.sessions / ".previews"):
            shared.mkdir(parents=True, exist_ok=True)
            shared.chmod(0o2770)


@dataclass(frozen=True)
class Config:
    """Everything the editor process is configured with."""

    env: EditorEnv
    settings: EditorSettings

    @property
    def workspace(self) -> Workspace:
        return Workspace(Path(self.env.workspace))


def load_config() -> Config:
    """Read both halves from the process environment (WEBORDINARY_*, secrets as plain vars)."""
    return Config(env=EditorEnv.from_env(dict(os.environ)), settings=EditorSettings())
