"""A full volume: the answer still goes out once, and the agent runs once (real ENOSPC from a
full tmpfs mounted over the journal in the editor's own mount namespace)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.integration.editor.harness import Rig, command
from webordinary.devkit.messages_api import text, tools, write


def full_journal_prefix(rig: Rig) -> list[str]:
    """Run the editor with its journal folder on an 8 KiB tmpfs that is already full."""
    journal = rig.workspace / ".journal"
    journal.mkdir(parents=True, exist_ok=True)
    script = (f"mount -t tmpfs -o size=8k tmpfs '{journal}' && "
              f"(dd if=/dev/zero of='{journal}/.fill' bs=4k 2>/dev/null; true) && "
              'exec "$@"')
    return ["unshare", "--map-root-user", "--mount", "sh", "-c", script, "sh"]


def can_mount() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--map-root-user", "--mount", "sh", "-c",
                            "mount -t tmpfs -o size=4k tmpfs /mnt"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not can_mount(), reason="no user and mount namespaces for a tiny tmpfs")
def test_a_full_journal_disk_answers_once_and_runs_the_agent_once(rig: Rig) -> None:
    rig.api.push(tools(write("src/pages/a.md", "# A\n")), text("Added page A."))
    editor = rig.start_editor(prefix=full_journal_prefix(rig))
    body = command("x", "full-1", "Add page A")
    rig.send(body)
    [result] = rig.results(1)
    assert result["status"] == "completed", result
    editor.wait_log("could not journal the answer to full-1")
    assert "No space left on device" in editor.log()
    rig.wait_empty(rig.input_url)
    requests = len(rig.api.main_requests())
    assert requests == 2

    rig.send(body)  # a duplicate delivery after the answer
    [again] = rig.results(1)
    assert again == result
    assert len(rig.api.main_requests()) == requests
    rig.no_more_results()
    assert rig.queue_depth(rig.dlq_url) == 0
