"""Reply bodies read in order: summary, the files under their heading, commit, preview."""

from __future__ import annotations

from webordinary.contracts.messages import Result, ResultStatus
from webordinary.hermes.decisions import ReplyContext
from webordinary.hermes.replies import result_mail

CTX = ReplyContext(to="john@ameliastamps.com", subject="Re: header", message_id="<m1@x>")


def test_completed_reply_lists_files_right_under_their_heading() -> None:
    result = Result(command_id="c1", session_id="abc123", status=ResultStatus.COMPLETED,
                    summary="Made the header blue.", files_changed=["src/pages/index.astro"],
                    commit="064b7459ead4ffff")
    mail = result_mail(CTX, result, "abc123", "https://edit.example", "edit@example.com")
    text = mail.text
    heading = text.index("Files changed:")
    item = text.index("  - src/pages/index.astro")
    commit = text.index("Saved as commit 064b7459ead4.")
    preview = text.index("Preview: https://edit.example/session/abc123/")
    assert heading < item < commit < preview
    assert text[heading:item].strip() == "Files changed:"
    assert mail.html.index("<li><code>src/pages/index.astro</code></li>") < mail.html.index(
        "Saved as commit")


def test_failed_reply_keeps_touched_files_under_their_heading() -> None:
    result = Result(command_id="c2", session_id="abc123", status=ResultStatus.FAILED,
                    summary="", files_changed=["a.astro"])
    text = result_mail(CTX, result, "abc123", "https://edit.example", "edit@example.com").text
    assert text.index("Files touched before it stopped:") < text.index("  - a.astro")
