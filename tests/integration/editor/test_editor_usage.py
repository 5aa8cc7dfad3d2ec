"""Usage in every result, and a monthly budget that stops new edits with a clear reply (real
editor process and Claude CLI; the reply rendered by Hermes' own reply builder)."""

from __future__ import annotations

import json

from tests.integration.editor.harness import Rig, command
from webordinary.contracts.messages import Result
from webordinary.devkit.messages_api import text, tools, write
from webordinary.hermes.decisions import ReplyContext
from webordinary.hermes.replies import result_mail


def test_usage_is_reported_and_a_used_up_budget_refuses_new_edits(rig: Rig) -> None:
    rig.extra_env["WEBORDINARY_MONTHLY_BUDGET_USD"] = "0.000001"
    rig.api.push(tools(write("src/pages/a.md", "# A\n")), text("Added page A."))
    editor = rig.start_editor()
    rig.send(command("x", "u-1", "Add page A"))
    [first] = rig.results(1)
    assert first["status"] == "completed", first
    usage = first["usage"]
    assert usage["inputTokens"] > 0
    assert usage["outputTokens"] > 0
    assert usage["costUsd"] > 0
    ledger = json.loads((rig.workspace / ".usage" / "ledger.json").read_text())
    [month] = ledger.values()
    assert month["costUsd"] == usage["costUsd"]
    assert "US$" in editor.log()

    rig.send(command("x", "u-2", "Add page B"))
    [refused] = rig.results(1)
    assert refused["status"] == "rejected", refused
    assert refused["error"]["reason"] == "budget_exceeded"
    assert len(rig.api.main_requests()) == 2  # the refused edit never reached the model
    ctx = ReplyContext(to="ann@example.com", subject="Re: site", message_id="m@example.com")
    mail = result_mail(ctx, Result.model_validate(refused), "x", "https://edit.example",
                       "edit@example.com")
    assert "editing budget for" in mail.text
    assert "is used up" in mail.text
    assert "Editing resumes on 1 " in mail.text
    assert "shorter, more specific request" not in mail.text
