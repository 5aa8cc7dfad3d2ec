"""How the editor configures Claude Code (no process is started here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from webordinary.contracts.editor_env import EditorEnv
from webordinary.editor.agent import Agent, session_id_for
from webordinary.editor.settings import Config, EditorSettings


def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-secret")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("WEBORDINARY_EDITOR_MODEL", "claude-sonnet-4-5")
    env = EditorEnv(environment="e", namespace="n", client_id="c", project_id="p", user_id="u",
                    container_id="e", input_queue_url="i", output_queue_url="o", dlq_url="d",
                    workspace=str(tmp_path), repository_url="r")
    return Config(env=env, settings=EditorSettings())


def test_session_ids_are_stable_per_environment_and_thread() -> None:
    assert session_id_for("e", "x") == session_id_for("e", "x")
    assert session_id_for("e", "x") != session_id_for("e", "y")
    assert session_id_for("e", "x") != session_id_for("f", "x")


def test_options_limit_tools_and_keep_state_on_the_volume(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = config(tmp_path, monkeypatch)
    agent = Agent(cfg, "x", tmp_path / "sessions" / "thread-x")
    options = agent.options()
    assert options.tools == ["Read", "Edit", "Write", "Glob", "Grep"]
    assert options.permission_mode == "acceptEdits"
    assert options.setting_sources == []
    assert options.cwd == str(tmp_path / "sessions" / "thread-x")
    assert options.env["CLAUDE_CONFIG_DIR"] == str(tmp_path / ".claude")
    assert options.env["ANTHROPIC_API_KEY"] == "sk-secret"
    assert options.env["WEBORDINARY_GIT_TOKEN"] == ""
    assert options.model == "claude-sonnet-4-5"
    assert (options.session_id, options.resume) == (agent.session_id, None)

    transcript = tmp_path / ".claude" / "projects" / "slug" / f"{agent.session_id}.jsonl"
    transcript.parent.mkdir(parents=True)
    transcript.write_text("{}\n")
    resumed = agent.options()
    assert (resumed.session_id, resumed.resume) == (None, agent.session_id)
