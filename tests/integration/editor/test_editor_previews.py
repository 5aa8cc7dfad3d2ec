"""The editor with real previews: an edit shows up at /session/{thread}/ (real astro dev)."""

from __future__ import annotations

from tests.integration.editor.harness import Rig, command
from webordinary.devkit.messages_api import edit, read, text, tools

INDEX = "src/pages/index.astro"
OLD_HEADLINE = "Welcome to Amelia's Stamps"


def test_each_session_preview_shows_its_own_change(rig: Rig) -> None:
    rig.enable_previews()
    rig.api.demo = True  # session a: the stand-in's demo script inserts the instruction
    editor = rig.start_editor()
    rig.send(command("a", "pa-1", "Spring sale on all stamps"))
    [a] = rig.results(1)
    rig.api.push(tools(read(INDEX)), tools(edit(INDEX, OLD_HEADLINE, "Closed for summer")),
                 text("Closed."))
    rig.send(command("b", "pb-1", "Say we are closed for summer"))
    [b] = rig.results(1)
    assert (a["status"], b["status"]) == ("completed", "completed")
    assert a["filesChanged"] == [INDEX]

    page_a = editor.wait_page(a["previewPath"], "<p>Spring sale on all stamps</p>")
    page_b = editor.wait_page(b["previewPath"], "Closed for summer")
    assert OLD_HEADLINE in page_a
    assert "Closed for summer" not in page_a
    assert "Spring sale" not in page_b
    assert editor.get("/session/nobody/")[0] == 404
    assert editor.get("/readyz", port=editor.metrics_port()) == (200, "ready\n")
    status, exposition = editor.get("/metrics", port=editor.metrics_port())
    assert status == 200
    assert 'webordinary_editor_commands_total{status="completed",type="edit"} 2.0' in exposition
    assert "webordinary_editor_busy 0.0" in exposition
    assert editor.terminate() == 0
    assert "<p>Spring sale on all stamps</p>" in rig.show("thread-a", INDEX)
