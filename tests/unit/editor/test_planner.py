"""Pure decisions of the editor: parsing, planning, commit messages, path safety."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from webordinary.contracts.messages import Command, Result, ResultStatus
from webordinary.editor.planner import (
    Adopt,
    Reject,
    Replay,
    Run,
    build_report,
    commit_message,
    confined,
    fit,
    parse,
    parse_s3_uri,
    plan,
    rejection,
    should_give_up,
    subject,
    tool_path_problem,
    upload_path,
)


def body(**overrides: object) -> str:
    raw: dict[str, object] = {"version": "v1", "sessionId": "x", "commandId": "c-1",
                              "type": "edit", "instruction": "Change the title",
                              "context": {"branch": "thread-x"}}
    raw.update(overrides)
    return json.dumps(raw)


def nothing(_: str) -> Result | None:
    return None


def test_a_valid_envelope_is_run() -> None:
    decision = plan(body(), "m1", nothing, running=None)
    assert isinstance(decision, Run)
    assert decision.command.instruction == "Change the title"


@pytest.mark.parametrize(
    ("raw", "reason", "mentions"),
    [
        ("{not json", "invalid_json", "not JSON"),
        ("[1, 2]", "invalid_envelope", "JSON object"),
        (body(type="dance"), "unknown_type", "type"),
        (body(version="v2"), "unsupported_version", "version"),
        (body(context=None), "invalid_envelope", "context"),
        (body(sessionId="../../etc"), "invalid_envelope", "sessionId"),
        (body(surprise=1), "invalid_envelope", "surprise"),
    ],
)
def test_bad_messages_are_rejected_naming_the_problem(raw: str, reason: str,
                                                     mentions: str) -> None:
    decision = parse(raw, "m1")
    assert isinstance(decision, Reject)
    assert decision.reason == reason
    assert mentions in decision.message


def test_a_rejection_keeps_the_ids_it_could_read() -> None:
    decision = parse(body(type="dance"), "m1")
    assert isinstance(decision, Reject)
    result = rejection(decision, "env")
    assert (result.command_id, result.session_id) == ("c-1", "x")
    assert result.status is ResultStatus.REJECTED
    assert result.error is not None
    assert result.error.reason == "unknown_type"
    unreadable = parse("garbage", "m1")
    assert isinstance(unreadable, Reject)
    assert unreadable.command_id == "sqs-m1"


def test_an_answered_command_is_replayed_not_rerun() -> None:
    done = Result(command_id="c-1", session_id="x", status=ResultStatus.COMPLETED)
    decision = plan(body(), "m1", lambda cid: done if cid == "c-1" else None, running=None)
    assert decision == Replay(done)


def test_the_running_command_coming_back_is_adopted() -> None:
    assert isinstance(plan(body(), "m1", nothing, running="c-1"), Adopt)
    assert isinstance(plan(body(), "m1", nothing, running="c-0"), Run)


def test_commit_messages_carry_instruction_summary_and_ids() -> None:
    command = Command.model_validate_json(body(instruction="Make it blue\nand bold"))
    message = commit_message(command, "Made the header blue.", wip="interrupted")
    assert message.startswith("WIP (interrupted): Make it blue\n\nMade the header blue.")
    assert "and bold" in message
    assert "Command-Id: c-1" in message
    assert subject("x" * 200, "f").endswith("...")
    assert len(subject("x" * 200, "f")) == 72
    assert subject("   \n", "edit command") == "edit command"


def test_retries_stop_at_the_last_attempt() -> None:
    assert not should_give_up(1, 3)
    assert should_give_up(3, 3)


def test_uploads_stay_in_public_uploads(tmp_path: Path) -> None:
    assert upload_path(tmp_path, "logo.png") == (tmp_path / "public/uploads/logo.png").resolve()
    assert upload_path(tmp_path, "../../x.png").name == "x.png"
    for bad in ("..", ".htaccess", ""):
        with pytest.raises(ValueError, match="unsafe"):
            upload_path(tmp_path, bad)


def test_tool_paths_are_confined_to_the_worktree(tmp_path: Path) -> None:
    assert confined(tmp_path, str(tmp_path / "src/pages/index.astro"))
    assert confined(tmp_path, "src/pages/index.astro")
    assert not confined(tmp_path, "/etc/passwd")
    assert not confined(tmp_path, str(tmp_path / ".." / "other"))
    assert not confined(tmp_path, str(tmp_path / ".git" / "config"))
    (tmp_path / "link").symlink_to("/etc")
    assert not confined(tmp_path, str(tmp_path / "link" / "passwd"))
    assert tool_path_problem(tmp_path, {"file_path": "/etc/passwd"}) is not None
    assert tool_path_problem(tmp_path, {"pattern": "*.astro"}) is None


def test_build_reports_drop_colours_and_stack_frames() -> None:
    output = "\x1b[31merror\x1b[39m Expected from\n  Location:\n    /s/index.astro:2:12\n" \
             "  Stack trace:\n    at failure (/x.js:1:1)\n    at next (/y.js:2:2)\n"
    assert build_report(output) == "error Expected from\n  Location:\n    /s/index.astro:2:12\n" \
                                   "  Stack trace:"
    assert build_report("x" * 50, limit=10) == "..." + "x" * 10


def test_s3_uris_need_a_bucket_and_a_key() -> None:
    assert parse_s3_uri("s3://mail/a/b/c.jpg") == ("mail", "a/b/c.jpg")
    for bad in ("https://x/y", "s3://bucket", "s3:///key"):
        with pytest.raises(ValueError, match="s3"):
            parse_s3_uri(bad)


def test_results_are_kept_small_enough_for_sqs() -> None:
    summary, files = fit("s" * 30_000, [f"f{i}" for i in range(600)])
    assert summary.endswith("[summary shortened]")
    assert len(summary) < 20_100
    assert files[-1] == "... and 100 more files"
    assert len(files) == 501
    assert fit("short", ["a"]) == ("short", ["a"])


@pytest.mark.parametrize("pattern", ["/etc/pass*", "/etc/*", "/*", "../*", "src/../../*",
                                     "~/.ssh/*", "/**/passwd"])
def test_glob_patterns_cannot_reach_outside(tmp_path: Path, pattern: str) -> None:
    assert tool_path_problem(tmp_path, {"pattern": pattern}, "Glob") is not None


@pytest.mark.parametrize("pattern", ["*.astro", "src/**/*.astro", "**/*"])
def test_glob_patterns_inside_are_allowed(tmp_path: Path, pattern: str) -> None:
    assert tool_path_problem(tmp_path, {"pattern": pattern}, "Glob") is None
    assert tool_path_problem(tmp_path, {"pattern": f"{tmp_path}/{pattern}"}, "Glob") is None


def test_grep_patterns_are_regexes_not_paths(tmp_path: Path) -> None:
    assert tool_path_problem(tmp_path, {"pattern": "/etc/passwd"}, "Grep") is None
    assert tool_path_problem(tmp_path, {"pattern": "x", "path": "/etc"}, "Grep") is not None
    assert tool_path_problem(tmp_path, {"pattern": "x", "glob": "/etc/*"}, "Grep") is not None
