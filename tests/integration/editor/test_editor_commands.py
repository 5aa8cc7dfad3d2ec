"""commit / push / build commands, attachments, path confinement, the job timeout."""

from __future__ import annotations

import base64
import subprocess

import boto3

from tests.integration.editor.harness import Rig, command, git
from webordinary.devkit.messages_api import ToolCall, edit, read, stall, text, tools, write

INDEX = "src/pages/index.astro"
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n-not-really-an-image").decode()


def test_commit_and_push_commands_do_what_they_say(rig: Rig) -> None:
    rig.start_editor()
    rig.api.push(tools(write("src/pages/x.md", "# X\n")), text("Added x."))
    rig.send(command("x", "e-1", "Add page x"))
    [edited] = rig.results(1)
    worktree = rig.workspace / "sessions" / "thread-x"
    (worktree / "notes.txt").write_text("left behind\n")

    rig.send(command("x", "c-1", "Save my notes", kind="commit"))
    [committed] = rig.results(1)
    assert committed["status"] == "completed", committed
    assert committed["filesChanged"] == ["notes.txt"]
    assert committed["commit"] != edited["commit"]
    assert rig.log_messages("thread-x")[0].startswith("Save my notes")

    rig.send(command("x", "c-2", "", kind="commit"))
    [nothing] = rig.results(1)
    assert nothing["summary"] == "Nothing to commit."
    assert "commit" not in nothing

    rig.send(command("x", "p-1", "Publish", kind="push"))
    [pushed] = rig.results(1)
    assert pushed["status"] == "completed", pushed
    assert git("rev-parse", "thread-x", cwd=rig.remote).strip() == committed["commit"]
    assert rig.api.pending() == 0


def test_attachments_land_in_uploads_and_paths_outside_are_refused(rig: Rig) -> None:
    rig.api.push(
        tools(ToolCall("Read", {"file_path": "/etc/hostname"})),
        tools(write("../escaped.txt", "nope\n")),
        tools(ToolCall("Glob", {"pattern": "/etc/pass*"})),
        text("I could not read that file."),
    )
    s3 = boto3.client("s3", endpoint_url=rig.moto.endpoint_url, region_name="us-east-1")
    s3.create_bucket(Bucket="mail")
    s3.put_object(Bucket="mail", Key="acme/x/att-1/photo.jpg", Body=b"JPEG-bytes")
    rig.start_editor()
    attachments = [
        {"filename": "logo.png", "contentType": "image/png", "contentBase64": PNG},
        {"filename": "photo.jpg", "s3Uri": "s3://mail/acme/x/att-1/photo.jpg"},
        {"filename": "gone.jpg", "s3Uri": "s3://mail/acme/x/att-1/gone.jpg"},
    ]
    rig.send(command("x", "att-1", "Use the attached logo", attachments=attachments))
    [result] = rig.results(1)

    assert result["status"] == "completed", result
    assert "public/uploads/logo.png" in result["filesChanged"]
    assert "public/uploads/photo.jpg" in result["filesChanged"]
    assert "gone.jpg could not be fetched" in result["summary"]
    assert rig.show("thread-x", "public/uploads/photo.jpg") == "JPEG-bytes"
    stored = subprocess.run(["git", "show", "thread-x:public/uploads/logo.png"], cwd=rig.repo,
                            capture_output=True, check=True).stdout
    assert stored == base64.b64decode(PNG)
    first, second, third, fourth = rig.api.main_requests()
    assert "public/uploads/logo.png" in first.transcript()
    assert "gone.jpg could not be fetched" in first.transcript()
    assert "outside this site's working copy" in second.transcript()
    assert "outside this site's working copy" in third.transcript()
    assert "reaches outside this site's working copy" in fourth.transcript()
    assert "/etc/passwd" not in fourth.transcript()
    assert not (rig.workspace / "sessions" / "escaped.txt").exists()


def test_a_long_job_keeps_its_lease_and_fails_at_its_time_limit(rig: Rig) -> None:
    rig.extra_env["WEBORDINARY_EDITOR_VISIBILITY_TIMEOUT_SECONDS"] = "10"
    rig.extra_env["WEBORDINARY_EDITOR_JOB_TIMEOUT_SECONDS"] = "13"
    rig.api.push(tools(write("src/pages/slow.md", "# Slow\n")), stall())
    editor = rig.start_editor()
    rig.send(command("x", "slow-1", "Write a slow page"))
    [result] = rig.results(1, timeout=40)

    assert editor.log().count("extended the lease of message") >= 2
    assert "delivered again" not in editor.log()
    assert len(rig.api.main_requests()) == 2

    assert result["status"] == "failed", result
    assert result["error"]["reason"] == "timeout"
    assert result["filesChanged"] == ["src/pages/slow.md"]
    assert rig.log_messages("thread-x")[0].startswith("WIP (timed out): Write a slow page")


def test_build_runs_astro_and_reports_its_errors(rig: Rig) -> None:
    rig.enable_previews()
    rig.extra_env["WEBORDINARY_EDITOR_PREVIEWS_ENABLED"] = "false"
    rig.start_editor()
    rig.api.push(tools(read(INDEX)), tools(edit(INDEX, "import Base from", "import Base frm")),
                 text("Broke it."))
    rig.send(command("x", "e-1", "Break the page"))
    rig.results(1)
    rig.send(command("x", "b-2", "", kind="build"))
    [broken] = rig.results(1, timeout=90)
    assert broken["status"] == "failed", broken
    assert broken["error"]["reason"] == "build_failed"
    assert "src/pages/index.astro:2" in broken["error"]["message"]
    assert "    at " not in broken["error"]["message"]
