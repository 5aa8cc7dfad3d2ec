"""Naming rules: valid for Kubernetes and SQS, deterministic, and injective."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webordinary.contracts import naming

DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
SQS_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}$")

ids = st.text(min_size=1, max_size=120)
tricky_ids = st.sampled_from(["a", "a-b", "b-c", "A", "a.b", "a_b", "x" * 70, "é", "-", "a--b"])
any_id = st.one_of(ids, tricky_ids)
triples = st.tuples(any_id, any_id, any_id)


def test_original_design_names_are_kept() -> None:
    assert naming.container_id("ameliastamps", "website", "john") == "ameliastamps-website-john"
    assert naming.queue_names("ameliastamps", "website", "john") == {
        "input": "webordinary-input-ameliastamps-website-john",
        "output": "webordinary-output-ameliastamps-website-john",
        "dlq": "webordinary-dlq-ameliastamps-website-john",
    }
    assert naming.branch_name("1a2b3c4d") == "thread-1a2b3c4d"
    assert naming.preview_path("1a2b3c4d") == "/session/1a2b3c4d/"
    assert naming.child_name("ameliastamps-website-john", "editor") == (
        "ameliastamps-website-john-editor"
    )


def test_ambiguous_joins_are_disambiguated() -> None:
    assert naming.container_id("a-b", "c", "d") != naming.container_id("a", "b-c", "d")
    assert naming.container_id("John", "x", "y") != naming.container_id("john", "x", "y")


def test_unknown_queue_role_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown queue role"):
        naming.queue_name("error", "a", "b", "c")


@pytest.mark.parametrize("bad", ["", "UPPER", "../etc", "a/b", "-a", "a" * 41, "a b"])
def test_bad_thread_ids_are_refused(bad: str) -> None:
    assert not naming.is_thread_id(bad)
    with pytest.raises(ValueError, match="invalid thread id"):
        naming.branch_name(bad)


@settings(max_examples=400)
@given(triples)
def test_queue_names_respect_sqs_limits(t: tuple[str, str, str]) -> None:
    for name in naming.queue_names(*t).values():
        assert SQS_NAME.match(name), name


@settings(max_examples=400)
@given(triples)
def test_container_id_is_a_dns_label_and_deterministic(t: tuple[str, str, str]) -> None:
    name = naming.container_id(*t)
    assert DNS_LABEL.match(name)
    assert len(name) <= naming.DNS_LABEL_MAX
    assert name == naming.container_id(*t)


@settings(max_examples=300)
@given(triples, triples)
def test_container_id_never_collides(a: tuple[str, str, str], b: tuple[str, str, str]) -> None:
    if a != b:
        assert naming.container_id(*a) != naming.container_id(*b)


@settings(max_examples=300)
@given(st.lists(triples, min_size=2, max_size=60, unique=True))
def test_many_environments_get_distinct_queues(envs: list[tuple[str, str, str]]) -> None:
    names = [naming.queue_name("input", *t) for t in envs]
    assert len(set(names)) == len(names)


@settings(max_examples=300)
@given(st.one_of(st.from_regex(naming._DNS_NAME, fullmatch=True), ids), st.sampled_from(
    ["editor", "workspace", "preview", "routes"]))
def test_child_names_are_valid_labels(env: str, role: str) -> None:
    name = naming.child_name(env, role)
    assert DNS_LABEL.match(name)
    assert len(name) <= naming.CHILD_NAME_MAX


@settings(max_examples=300)
@given(st.tuples(ids, st.sampled_from(["editor", "workspace"])),
       st.tuples(ids, st.sampled_from(["editor", "workspace"])))
def test_child_names_never_collide(a: tuple[str, str], b: tuple[str, str]) -> None:
    if a != b:
        assert naming.child_name(*a) != naming.child_name(*b)


@given(ids)
def test_label_values_are_valid(value: str) -> None:
    out = naming.label_value(value)
    assert DNS_LABEL.match(out)
    assert len(out) <= 63


def test_hex_like_roles_are_refused() -> None:
    with pytest.raises(ValueError, match="child role"):
        naming.child_name("env", "0123456789")


@pytest.mark.parametrize("value", ["abc\n", "abc\r\n", "\nabc", "ab c", ""])
def test_thread_ids_are_matched_whole(value: str) -> None:
    assert not naming.is_thread_id(value)
    with pytest.raises(ValueError, match="invalid thread id"):
        naming.branch_name(value)


def test_a_command_with_a_newline_in_its_session_id_is_refused() -> None:
    from pydantic import ValidationError

    from webordinary.contracts.messages import Command

    with pytest.raises(ValidationError):
        Command.model_validate({"sessionId": "abc\n", "commandId": "c", "type": "edit",
                                "context": {"branch": "thread-abc"}})
