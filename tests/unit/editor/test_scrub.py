"""What the error overlay receives over the HMR websocket: no absolute path of the node."""

from __future__ import annotations

import json
from pathlib import Path

from webordinary.editor.previews.scrub import scrub_hmr, scrub_paths

SESSIONS = Path("/ws/sessions")
PAGE = "/ws/sessions/thread-abc/src/pages/oops.astro"


def test_an_hmr_error_loses_every_absolute_path() -> None:
    message = json.dumps({"type": "error", "err": {
        "message": f"Transform failed: {PAGE}:2:15: Unexpected ';'",
        "stack": f"Error\n    at f (file://{PAGE}:2:15)\n    at g (/ws/sessions/node_modules/"
                 "vite/dist/node/chunks/dep.js:1:1)\n    at h (/usr/lib/node/internal.js:3:3)",
        "id": PAGE, "frame": "> 2 | const broken = ;", "plugin": "astro:build",
        "loc": {"file": PAGE, "line": 2, "column": 15}, "notes": [{"text": PAGE}]}})
    err = json.loads(scrub_hmr(message, SESSIONS))["err"]
    assert err["id"] == "src/pages/oops.astro"
    assert err["loc"] == {"file": "src/pages/oops.astro", "line": 2, "column": 15}
    assert err["notes"] == [{"text": "src/pages/oops.astro"}]
    assert "src/pages/oops.astro:2:15" in err["stack"]
    assert "node_modules/vite/dist/node/chunks/dep.js" in err["stack"]
    assert "/ws/" not in json.dumps(err)
    assert "/usr/" not in err["stack"]
    assert "file://" not in err["stack"]


def test_updates_and_other_messages_pass_untouched() -> None:
    for message in (
        '{"type":"connected"}',
        '{"type":"update","updates":[{"type":"js-update","path":"/src/pages/index.astro",'
        '"acceptedPath":"/src/pages/index.astro","timestamp":1}]}',
        '{"type":"custom","event":"astro:error","data":"not ours to parse"}',
        "not json at all with an error word",
    ):
        assert scrub_hmr(message, SESSIONS) == message


def test_a_full_reload_names_its_trigger_relative() -> None:
    message = json.dumps({"type": "full-reload", "path": "*", "triggeredBy": PAGE})
    assert json.loads(scrub_hmr(message, SESSIONS)) == {
        "type": "full-reload", "path": "*", "triggeredBy": "src/pages/oops.astro"}


def test_file_urls_are_paths_too() -> None:
    assert scrub_paths(f"at (file://{PAGE}:1:1)", SESSIONS) == "at (src/pages/oops.astro:1:1)"
