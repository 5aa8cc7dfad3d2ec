"""Arbitrary input never crashes the pure path: a Drop/Reply/Accept, or MailError."""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.plugins.hermes import ROUTING_YAML, corpus
from webordinary.contracts.naming import is_thread_id
from webordinary.hermes.auth import Verdict, Verdicts
from webordinary.hermes.decisions import Accept, Drop, Inbound, Limits, Reply, decide
from webordinary.hermes.mail import MailError, parse_mail
from webordinary.hermes.quotes import strip_quotes
from webordinary.hermes.routing import load_routing
from webordinary.hermes.threads import thread_id

ROUTING = load_routing(ROUTING_YAML)
PASSING = Verdicts(spf=Verdict.PASS, dkim=Verdict.PASS, dmarc=Verdict.PASS)
HEADER_NAMES = ["From", "To", "Subject", "Message-ID", "In-Reply-To", "References",
                "Thread-Index", "Content-Type", "Content-Transfer-Encoding", "Date",
                "Content-Disposition", "Auto-Submitted", "Reply-To"]
header_value = st.text(st.characters(codec="latin-1", exclude_characters="\r\n"), max_size=80)
headers = st.lists(st.tuples(st.sampled_from(HEADER_NAMES), header_value), max_size=12)
body = st.binary(max_size=400)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(headers=headers, body=body)
def test_random_mail_never_crashes(headers: list[tuple[str, str]], body: bytes) -> None:
    raw = b"".join(f"{k}: {v}\r\n".encode("latin-1") for k, v in headers) + b"\r\n" + body
    inbound = Inbound(raw=raw, verdicts=PASSING, source="ses", delivery_id="fuzz")
    decision = decide(inbound, ROUTING, Limits(), {})
    assert isinstance(decision, Accept | Reply | Drop)
    if isinstance(decision, Accept):
        assert is_thread_id(decision.plan.thread_id)
    with contextlib.suppress(MailError):
        assert is_thread_id(thread_id(parse_mail(raw)))


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 4000), st.binary(min_size=1, max_size=64))
def test_corrupted_corpus_mail_never_crashes(position: int, junk: bytes) -> None:
    raw = corpus("apple_mail.eml")
    position = min(position, len(raw))
    mangled = raw[:position] + junk + raw[position + len(junk):]
    decision = decide(Inbound(raw=mangled, verdicts=PASSING, source="ses", delivery_id="x"),
                      ROUTING, Limits(), {})
    assert isinstance(decision, Accept | Reply | Drop)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=500))
def test_strip_quotes_is_total_and_idempotent(text: str) -> None:
    once = strip_quotes(text)
    assert strip_quotes(once) == once
