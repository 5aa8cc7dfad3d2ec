"""Routing config (validation, lookup, reload) and the authentication policy."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.plugins.hermes import ROUTING_YAML
from webordinary.hermes.auth import Verdict, Verdicts, check, smtp_verdicts
from webordinary.hermes.routing import Miss, Route, RoutingSource, load_routing, route

P = Verdict.PASS
F = Verdict.FAIL


def test_route_exact_sender_beats_domain_rule() -> None:
    config = load_routing(ROUTING_YAML)
    found = route(config, "John@AmeliaStamps.com", ["website@edit.webordinary.dev"])
    assert isinstance(found, Route)
    assert (found.client_id, found.project_id, found.user_id) == ("ameliastamps", "website", "john")
    other = route(config, "kim@ameliastamps.com", ["Website@Edit.Webordinary.dev"])
    assert isinstance(other, Route)
    assert other.user_id == "team"
    tagged = route(config, "john@ameliastamps.com", ["website+x@edit.webordinary.dev"])
    assert isinstance(tagged, Route)


@pytest.mark.parametrize(
    ("sender", "rcpt", "miss"),
    [
        ("someone@example.org", "website@edit.webordinary.dev", Miss.UNKNOWN_SENDER),
        ("john@ameliastamps.com", "nope@edit.webordinary.dev", Miss.UNKNOWN_PROJECT),
        ("mallory@otherclient.com", "website@edit.webordinary.dev", Miss.NOT_AUTHORIZED),
        ("someone@example.org", "nope@edit.webordinary.dev", Miss.UNKNOWN_SENDER),
    ],
)
def test_route_misses(sender: str, rcpt: str, miss: Miss) -> None:
    assert route(load_routing(ROUTING_YAML), sender, [rcpt]) == miss


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("senders: [{address: a@b.c, clientId: x}]", "userId"),
        ("senders: [{address: a@b.c, clientId: x, userId: y, extra: 1}]", "Extra inputs"),
        ("senders: [{address: 'a*@b.c', clientId: x, userId: y}]", "wildcards"),
        ("projects: [{address: p@b.c, clientId: 'bad id', projectId: p, "
         "repository: {url: u}}]", "clientId"),
        ("senders: [", "not valid YAML"),
    ],
)
def test_invalid_routing_is_explained(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_routing(text)


def test_routing_source_reloads_and_keeps_last_good(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    source = RoutingSource(path)
    assert source.get().senders == []
    assert source.error
    path.write_text(ROUTING_YAML)
    assert len(source.get().senders) == 4
    assert source.error is None
    path.write_text("senders: [{address: nope}]")
    os.utime(path, ns=(1, 10**18))
    assert len(source.get().senders) == 4  # the broken edit is not applied
    assert source.error
    assert "invalid" in source.error
    path.write_text("senders: []\nprojects: []\n")
    os.utime(path, ns=(1, 2 * 10**18))
    assert source.get().senders == []
    assert source.error is None


def test_example_routing_file_is_valid() -> None:
    example = Path(__file__).resolve().parents[3] / "hermes" / "routing.example.yaml"
    config = load_routing(example.read_text())
    assert config.senders
    assert config.projects


@pytest.mark.parametrize(
    ("verdicts", "policy", "ok", "reason"),
    [
        (Verdicts(spf=P, dkim=P, dmarc=P), "strict", True, ""),
        (Verdicts(spf=P, dkim=F, dmarc=P), "strict", False, "dkim-fail"),
        (Verdicts(spf=P, dkim=P), "strict", False, "dmarc-none"),
        (Verdicts(spf=F, dkim=P, dmarc=P), "dmarc", True, ""),
        (Verdicts(spf=F, dkim=F, dmarc=P), "dmarc", False, "spf-and-dkim-not-pass"),
        (Verdicts(spf=P, dkim=P, dmarc=Verdict.GRAY), "dmarc", False, "dmarc-gray"),
        (Verdicts(spf=P, dkim=P, dmarc=P, virus=F), "strict", False, "virus"),
        (Verdicts(spf=P, dkim=P, dmarc=P, spam=F), "dmarc", False, "spam"),
    ],
)
def test_auth_policy(verdicts: Verdicts, policy: str, ok: bool, reason: str) -> None:
    outcome = check(verdicts, policy)  # type: ignore[arg-type]
    assert (outcome.ok, outcome.reason) == (ok, reason)


def test_smtp_local_policy() -> None:
    nets = ["127.0.0.0/8"]
    good = smtp_verdicts("127.0.0.1", "john@a.com", "john@a.com", nets)
    assert check(good).ok
    assert not check(smtp_verdicts("10.1.2.3", "john@a.com", "john@a.com", nets)).ok
    assert not check(smtp_verdicts("127.0.0.1", "x@evil.com", "john@a.com", nets)).ok
    assert not check(smtp_verdicts(None, "john@a.com", "john@a.com", nets)).ok
