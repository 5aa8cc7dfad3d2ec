"""SES notification shapes, reply rendering, command building, environment patches."""

from __future__ import annotations

import base64
import email
import json
from datetime import UTC, datetime
from email import policy

import pytest

from tests.plugins.hermes import corpus, ses_notification
from webordinary.contracts.environment import ANNOTATION_WAKE
from webordinary.contracts.messages import Result, ResultError, ResultStatus
from webordinary.hermes import environments as envs
from webordinary.hermes.auth import Verdict
from webordinary.hermes.commands import build_command, split_attachments
from webordinary.hermes.decisions import Accept, Inbound, Limits, decide, reply_context
from webordinary.hermes.mail import MailAttachment, parse_mail
from webordinary.hermes.notifications import NotificationError, parse_notification
from webordinary.hermes.ratelimit import ReplyBudget
from webordinary.hermes.replies import render, result_mail
from webordinary.hermes.routing import RoutingConfig

RAW = corpus("gmail_new.eml")


@pytest.mark.parametrize("sns", [True, False])
@pytest.mark.parametrize("encoding", ["BASE64", "UTF8"])
def test_inline_notification_shapes(sns: bool, encoding: str) -> None:
    note = parse_notification(ses_notification(RAW, sns=sns, encoding=encoding,
                                               verdicts={"dkim": "FAIL"}))
    assert note is not None
    assert note.content == RAW
    assert note.s3 is None
    assert note.ses_message_id == "ses-0001"
    assert note.recipients == ["website@edit.webordinary.dev"]
    assert (note.verdicts.spf, note.verdicts.dkim) == (Verdict.PASS, Verdict.FAIL)


def test_s3_notification_shape() -> None:
    note = parse_notification(ses_notification(None, s3=("bucket", "in/key"), sns=True))
    assert note is not None
    assert note.content is None
    assert note.s3 is not None
    assert (note.s3.bucket, note.s3.key) == ("bucket", "in/key")


def test_handshakes_are_ignored_and_garbage_is_explained() -> None:
    assert parse_notification(json.dumps({"Type": "SubscriptionConfirmation",
                                          "SubscribeURL": "https://x"})) is None
    assert parse_notification(json.dumps({"notificationType": "AmazonSnsSubscriptionSucceeded",
                                          "message": "ok"})) is None
    with pytest.raises(NotificationError, match="not JSON"):
        parse_notification("<xml/>")
    with pytest.raises(NotificationError, match="not an SES notification"):
        parse_notification(json.dumps({"notificationType": "Received"}))
    no_content = json.loads(ses_notification(None, sns=False))
    with pytest.raises(NotificationError, match="neither content nor an S3"):
        parse_notification(json.dumps(no_content))


def test_reply_threading_headers_and_bodies() -> None:
    mail = parse_mail(corpus("gmail_reply.eml"))
    ctx = reply_context(mail)
    result = Result(command_id="cmd-1", session_id="0123456789abcdef",
                    status=ResultStatus.COMPLETED, summary="Bold <b>now</b>.",
                    files_changed=[f"src/f{i}.astro" for i in range(25)], commit="a" * 40)
    out = result_mail(ctx, result, "0123456789abcdef", "https://p.test/", "edit@webordinary.dev",
                      "Webordinary")
    msg = email.message_from_bytes(render(out, datetime(2026, 11, 28, tzinfo=UTC)),
                                   policy=policy.default)
    assert msg["In-Reply-To"] == "<CAJx8mK0Qw7rT2yUi=Op4_As5dF6gH@mail.gmail.com>"
    assert msg["References"].split() == [
        "<CAJx8mK3p2Lr9vQ=Hn5_T0bq+Yw4zA@mail.gmail.com>",
        "<result-completed.cmd-1a2b3c4d5e6f708192a3b4c5@webordinary.dev>",
        "<CAJx8mK0Qw7rT2yUi=Op4_As5dF6gH@mail.gmail.com>",
    ]
    assert msg["Subject"] == "Re: Contact page phone number"  # one Re:, not two
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["From"] == "Webordinary <edit@webordinary.dev>"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert "https://p.test/session/0123456789abcdef/" in text
    assert "... and 5 more" in text
    assert "Bold &lt;b&gt;now&lt;/b&gt;." in html  # user-visible text is escaped in HTML
    assert "aaaaaaaaaaaa" in text


def test_failure_reply_says_what_to_try() -> None:
    ctx = reply_context(parse_mail(RAW))
    result = Result(command_id="cmd-1", session_id="abc", status=ResultStatus.REJECTED,
                    error=ResultError(reason="OutOfScope", message="that file is not in the site"))
    out = result_mail(ctx, result, "abc", "https://p.test", "edit@webordinary.dev")
    assert "could not be carried out: that file is not in the site" in out.text
    assert "What to try" in out.text


def test_outlook_thread_index_is_echoed() -> None:
    ctx = reply_context(parse_mail(corpus("outlook_new.eml")))
    result = Result(command_id="c", session_id="abc", status=ResultStatus.INTERRUPTED)
    raw = render(result_mail(ctx, result, "abc", "https://p.test", "edit@webordinary.dev"))
    msg = email.message_from_bytes(raw, policy=policy.default)
    assert msg["Thread-Index"] == "AdtKfD4hnxwrPU5fYHGCk6S1xtfo+Q=="
    assert msg["Subject"] == "Re: Caf\u00e9 menu section"


def test_split_attachments_by_budget() -> None:
    items = [MailAttachment(filename=f"{n}.png", content_type="image/png", data=b"x" * n)
             for n in (300, 30, 3000)]
    inline, stored = split_attachments(items, 500)
    assert [a.filename for a in inline] == ["30.png", "300.png"]
    assert [a.filename for a in stored] == ["3000.png"]


def test_build_command(hermes_routing: RoutingConfig) -> None:
    decision = decide(
        Inbound(raw=corpus("apple_mail.eml"),
                verdicts=parse_notification(ses_notification(RAW)).verdicts,  # type: ignore[union-attr]
                source="ses", delivery_id="x"),
        hermes_routing, Limits(),
    )
    assert isinstance(decision, Accept)
    plan = decision.plan
    command = build_command(plan, plan.attachments, [], datetime(2026, 11, 28, tzinfo=UTC))
    wire = command.to_wire()
    assert wire["sessionId"] == plan.thread_id
    assert wire["context"] == {"branch": f"thread-{plan.thread_id}", "files": []}
    [attachment] = wire["attachments"]  # type: ignore[misc]
    assert base64.b64decode(attachment["contentBase64"]) == plan.attachments[0].data


def test_environment_patches() -> None:
    obj = {"metadata": {"name": "e", "resourceVersion": "7"},
           "spec": {"sessions": ["a"]}, "status": {"phase": "Sleeping", "queues": {"input": "u"}}}
    assert envs.session_patch(obj, "a") is None
    assert envs.session_patch(obj, "b") == [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "7"},
        {"op": "add", "path": "/spec/sessions/-", "value": "b"},
    ]
    assert envs.needs_wake(obj)
    assert envs.queue_url(obj, "input") == "u"
    assert envs.queue_url(obj, "dlq") is None
    stamp = envs.wake_patch(datetime(2026, 11, 28, 15, 0, 1, tzinfo=UTC))
    assert stamp == {"metadata": {"annotations": {ANNOTATION_WAKE: "2026-11-28T15:00:01Z"}}}
    full = {"metadata": {"resourceVersion": "1"},
            "spec": {"sessions": [f"s{i}" for i in range(envs.MAX_SESSIONS)]}}
    ops = envs.session_patch(full, "new")
    assert ops is not None
    assert ops[-2:] == [{"op": "remove", "path": "/spec/sessions/0"},
                        {"op": "add", "path": "/spec/sessions/-", "value": "new"}]


def test_reply_budget() -> None:
    budget = ReplyBudget(1)
    assert budget.allow("A@x.org", 0)
    assert not budget.allow("a@x.org", 10)
    assert budget.allow("b@x.org", 10)
    assert budget.allow("a@x.org", 3600)
