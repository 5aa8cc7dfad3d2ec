"""Reply bodies read in order: summary, the files under their heading, commit, preview."""

from __future__ import annotations

from webordinary.contracts.messages import Push, PushState, Result, ResultStatus
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


def test_conflict_reply_says_in_plain_words_where_the_change_is() -> None:
    result = Result(command_id="c3", session_id="abc123", status=ResultStatus.CONFLICT,
                    summary="Made the header blue.", files_changed=["src/pages/index.astro"],
                    commit="1234567890abcdef",
                    push=Push(state=PushState.CONFLICT, branch="thread-abc123-conflict-1"))
    mail = result_mail(CTX, result, "abc123", "https://edit.example", "edit@example.com")
    assert mail.kind == "result-conflict"
    assert mail.text.startswith("Your change is made: Made the header blue.")
    assert "on a branch of its own, thread-abc123-conflict-1" in mail.text
    assert "Nothing is lost" in mail.text
    assert "Sorry" not in mail.text
    assert "failed" not in mail.text
    assert "Saved as commit 1234567890ab." in mail.text


def test_interrupted_reply_claims_only_what_the_editor_said() -> None:
    result = Result(command_id="c4", session_id="abc123", status=ResultStatus.INTERRUPTED,
                    summary="")
    text = result_mail(CTX, result, "abc123", "https://edit.example", "edit@example.com").text
    assert text.startswith("Your request was interrupted before it finished.\n")
    assert "saved" not in text
