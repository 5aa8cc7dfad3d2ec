"""The email corpus: thread ids, extracted instructions, attachments and decisions per mail."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from tests.plugins.hermes import FROM_ADDRESS, corpus
from webordinary.hermes.auth import Verdict, Verdicts
from webordinary.hermes.decisions import (
    Accept,
    Drop,
    Inbound,
    Limits,
    Reason,
    Reply,
    decide,
    instruction_of,
)
from webordinary.hermes.mail import parse_mail
from webordinary.hermes.routing import RoutingConfig
from webordinary.hermes.threads import learn, resolve_thread, thread_id, thread_keys

PASSING = Verdicts(spf=Verdict.PASS, dkim=Verdict.PASS, dmarc=Verdict.PASS, spam=Verdict.PASS,
                   virus=Verdict.PASS)
FORGED = Verdicts(spf=Verdict.PASS, dkim=Verdict.FAIL, dmarc=Verdict.FAIL, spam=Verdict.PASS,
                  virus=Verdict.PASS)
LIMITS = Limits(own_addresses=frozenset({FROM_ADDRESS}))

# file -> (exact instruction or None when the decision is not Accept, decision kind/reason)
EXPECTED: dict[str, tuple[str | None, str]] = {
    "gmail_new.eml": (
        "Hi,\n\nPlease change the phone number on the contact page to (555) 010-0199 \u2013 the "
        "old\none doesn\u2019t work anymore.\n\nThanks,\nJohn",
        "accept",
    ),
    "gmail_reply.eml": ("Looks great, thanks! Could you also make the number bold?", "accept"),
    "outlook_new.eml": (
        "Hello,\n\nplease rename the \u00abCaf\u00e9 menu\u00bb section to \u00abMen\u00fc & "
        "Pr\u00e4ise\u00bb and move it above the opening hours.\n\nBest regards\nSarah M\u00fcller",
        "accept",
    ),
    "outlook_reply_norefs.eml": (
        "Thank you! Please also change the heading colour to dark green.\n\nSarah", "accept"
    ),
    "outlook_reply_original.eml": (
        "One more thing: the opening hours on Sunday are 10:00-14:00 now.", "accept"
    ),
    "apple_mail_first.eml": (
        "Please replace the text on the About page with:\n\nWe are a family business since 1962."
        "\n\nAnna",
        "accept",
    ),
    "apple_mail.eml": (
        "Please add this photo of our team to the About page, below the first paragraph.\n\n"
        "Gr\u00fc\u00dfe, Anna",
        "accept",
    ),
    "mobile_iphone.eml": (
        "Can you put \u201cClosed on Dec 24\u201d as a banner on the home page? \U0001f384",
        "accept",
    ),
    "html_only.eml": (
        "Bitte \u00e4ndern Sie die \u00d6ffnungszeiten:\n\n- Mo\u2013Fr 9\u201318 Uhr\n"
        "- Sa 10\u201314 Uhr\n\nDanke, J\u00fcrgen",
        "accept",
    ),
    "forwarded.eml": (
        "Please put this announcement on the News page.\n\n"
        "---------- Forwarded message ---------\nFrom: Maria Rossi <maria@ameliastamps.com>\n"
        "Date: Fri, Nov 27, 2026 at 6:02 PM\nSubject: New stamps\n"
        "To: John Smith <john@ameliastamps.com>\n\n"
        "Our new series \u201cAlpine Flowers\u201d is available from December 1st.",
        "accept",
    ),
    "outlook_mobile_inline_image.eml": (
        "Use this picture as the new header image please", "accept"
    ),
    "forged_sender.eml": (None, "drop:auth-failed"),
    "unknown_sender.eml": (None, "reply:unknown-sender"),
    "auto_reply.eml": (None, "drop:auto-submitted"),
    "empty_reply.eml": (None, "reply:empty-instruction"),
}

VERDICTS = {"forged_sender.eml": FORGED}


def _decide(name: str, routing: RoutingConfig, known: Mapping[str, str] | None = None) -> object:
    inbound = Inbound(
        raw=corpus(name), verdicts=VERDICTS.get(name, PASSING), source="ses",
        delivery_id=f"ses-{name}",
    )
    return decide(inbound, routing, LIMITS, known)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_decision_and_instruction(name: str, hermes_routing: RoutingConfig) -> None:
    instruction, kind = EXPECTED[name]
    decision = _decide(name, hermes_routing)
    if kind == "accept":
        assert isinstance(decision, Accept), decision
        assert decision.plan.instruction == instruction
        assert decision.plan.environment.startswith("ameliastamps-website-")
        assert decision.plan.command_id.startswith("cmd-")
    elif kind.startswith("drop:"):
        assert isinstance(decision, Drop), decision
        assert decision.reason == kind.removeprefix("drop:")
    else:
        assert isinstance(decision, Reply), decision
        assert decision.reason == Reason(kind.removeprefix("reply:"))


def test_the_forged_mail_would_be_accepted_if_it_had_passed(hermes_routing: RoutingConfig) -> None:
    """The forged mail is dropped for its verdicts alone: everything else about it routes."""
    inbound = Inbound(raw=corpus("forged_sender.eml"), verdicts=PASSING, source="ses",
                      delivery_id="x")
    assert isinstance(decide(inbound, hermes_routing, LIMITS), Accept)


def test_users_map_to_their_own_environment(hermes_routing: RoutingConfig) -> None:
    envs = {}
    for name in ("gmail_new.eml", "outlook_new.eml", "html_only.eml"):
        decision = _decide(name, hermes_routing)
        assert isinstance(decision, Accept)
        envs[name] = decision.plan.environment
    assert envs == {
        "gmail_new.eml": "ameliastamps-website-john",
        "outlook_new.eml": "ameliastamps-website-sarah",
        "html_only.eml": "ameliastamps-website-team",  # via the *@ameliastamps.com rule
    }


def _id(name: str) -> str:
    return thread_id(parse_mail(corpus(name)))


def test_gmail_reply_joins_its_thread_without_any_registry() -> None:
    assert _id("gmail_reply.eml") == _id("gmail_new.eml")
    assert _id("empty_reply.eml") == _id("gmail_new.eml")


def test_apple_reply_joins_its_thread() -> None:
    assert _id("apple_mail.eml") == _id("apple_mail_first.eml")


def test_outlook_replies_without_references_join_by_thread_index() -> None:
    first = _id("outlook_new.eml")
    assert _id("outlook_reply_norefs.eml") == first
    assert _id("outlook_reply_original.eml") == first


def test_distinct_conversations_get_distinct_threads() -> None:
    roots = ["gmail_new.eml", "outlook_new.eml", "apple_mail_first.eml", "mobile_iphone.eml",
             "html_only.eml", "forwarded.eml", "outlook_mobile_inline_image.eml"]
    ids = {_id(name) for name in roots}
    assert len(ids) == len(roots)
    for value in ids:
        assert len(value) == 16
        assert int(value, 16) >= 0


def test_registry_keeps_mixed_clients_in_one_thread() -> None:
    """An Outlook reply without References to a Gmail-started thread: In-Reply-To points at
    Hermes' reply, which the registry knows, so the session stays the same."""
    known: dict[str, str] = {}
    first = parse_mail(corpus("gmail_new.eml"))
    keys = thread_keys(first)
    tid = resolve_thread(keys, known)
    known.update(learn(keys, tid))
    known["mid:ack.cmd-1@webordinary.dev"] = tid  # Hermes' own reply, learned when sent
    reply = parse_mail(
        b"From: john@ameliastamps.com\r\nTo: website@edit.webordinary.dev\r\n"
        b"Subject: RE: Contact\r\nMessage-ID: <x1@outlook.com>\r\n"
        b"In-Reply-To: <ack.cmd-1@webordinary.dev>\r\n"
        b"Thread-Index: AQHbSnw+If6hBZ1bQ0y4xyIfP0ZXkA==\r\n\r\nbold please\r\n"
    )
    assert thread_id(reply) != tid  # without the registry it would start a new session
    assert resolve_thread(thread_keys(reply), known) == tid


def test_attachments_are_decoded_and_named_safely() -> None:
    apple = parse_mail(corpus("apple_mail.eml"))
    assert [(a.filename, a.content_type) for a in apple.attachments] == [
        ("Team Foto Munchen.png", "image/png")
    ]
    assert apple.attachments[0].data.startswith(b"\x89PNG\r\n\x1a\n")
    inline = parse_mail(corpus("outlook_mobile_inline_image.eml"))
    assert [(a.filename, a.inline) for a in inline.attachments] == [("image001.jpg", True)]
    assert inline.attachments[0].data.startswith(b"\xff\xd8")
    # the forwarded mail (message/rfc822) is context, not a file for the site
    assert parse_mail(corpus("forwarded.eml")).attachments == []


def test_headers_are_decoded() -> None:
    outlook = parse_mail(corpus("outlook_new.eml"))
    assert outlook.subject == "Caf\u00e9 menu section"
    assert outlook.from_name == "Sarah M\u00fcller"
    assert outlook.from_address == "sarah@ameliastamps.com"
    html_only = parse_mail(corpus("html_only.eml"))
    assert html_only.subject == "\u00d6ffnungszeiten"
    assert html_only.html is not None
    assert "<style>" in html_only.html


def test_too_many_attachments_get_a_reply(hermes_routing: RoutingConfig) -> None:
    inbound = Inbound(raw=corpus("apple_mail.eml"), verdicts=PASSING, source="ses",
                      delivery_id="x")
    decision = decide(inbound, hermes_routing, Limits(max_attachments=0))
    assert isinstance(decision, Reply)
    assert decision.reason == Reason.TOO_MANY_ATTACHMENTS


def test_oversized_mail_gets_a_reply(hermes_routing: RoutingConfig) -> None:
    inbound = Inbound(raw=corpus("gmail_new.eml"), verdicts=PASSING, source="ses",
                      delivery_id="x")
    decision = decide(inbound, hermes_routing, Limits(max_message_bytes=100))
    assert isinstance(decision, Reply)
    assert decision.reason == Reason.TOO_LARGE


def test_mail_from_our_own_address_is_dropped(hermes_routing: RoutingConfig) -> None:
    raw = corpus("gmail_new.eml").replace(b"From: John Smith <john@ameliastamps.com>",
                                          b"From: Webordinary <edit@webordinary.dev>")
    inbound = Inbound(raw=raw, verdicts=PASSING, source="ses", delivery_id="x")
    decision = decide(inbound, hermes_routing, LIMITS)
    assert isinstance(decision, Drop)
    assert decision.reason == "own-address"


def test_instruction_of_subject_only_mail() -> None:
    mail = parse_mail(b"From: a@b.c\r\nSubject: Make the logo bigger\r\n\r\n\r\n")
    assert instruction_of(mail) == "Make the logo bigger"
    reply = parse_mail(b"From: a@b.c\r\nSubject: Re: logo\r\nIn-Reply-To: <x@y>\r\n\r\n")
    assert instruction_of(reply) == ""


def test_threads_are_scoped_by_environment(hermes_routing: RoutingConfig) -> None:
    """One conversation, two users: two sessions. Quoting another tenant's Message-IDs never
    lands in that tenant's session (nor its preview path)."""
    raw = corpus("gmail_reply.eml")
    john = _decide("gmail_reply.eml", hermes_routing)
    sarah_raw = raw.replace(b"From: John Smith <john@ameliastamps.com>",
                            b"From: Sarah <sarah@ameliastamps.com>")
    sarah = decide(Inbound(raw=sarah_raw, verdicts=PASSING, source="ses", delivery_id="s"),
                   hermes_routing, LIMITS)
    assert isinstance(john, Accept)
    assert isinstance(sarah, Accept)
    assert john.plan.thread_id != sarah.plan.thread_id
    known = learn(john.plan.thread_keys, john.plan.thread_id, john.plan.environment)
    again = decide(Inbound(raw=sarah_raw, verdicts=PASSING, source="ses", delivery_id="s"),
                   hermes_routing, LIMITS, known)
    assert isinstance(again, Accept)
    assert again.plan.thread_id == sarah.plan.thread_id
    assert john.plan.thread_id == thread_id(parse_mail(raw), scope="ameliastamps-website-john")

