"""Label and field selector parsing/matching of the Kubernetes API emulator."""

from __future__ import annotations

import pytest

from webordinary.devkit.kube.errors import ApiError
from webordinary.devkit.kube.selectors import (
    fields_match,
    labels_match,
    parse_field_selector,
    parse_label_selector,
)

LABELS = {"env": "prod", "tier": "web", "size": "5"}


@pytest.mark.parametrize(("selector", "expected"), [
    ("env=prod", True), ("env==prod", True), ("env=dev", False), ("env!=dev", True),
    ("env!=prod", False), ("missing!=x", True), ("env in (prod, dev)", True),
    ("env in (dev)", False), ("env notin (dev)", True), ("env notin (prod)", False),
    ("missing notin (x)", True), ("tier", True), ("missing", False), ("!missing", True),
    ("!tier", False), ("env=prod,tier=web", True), ("env=prod,tier=db", False),
    ("size>4", True), ("size<5", False), ("", True), ("app.kubernetes.io/name!=x", True),
])
def test_label_selector(selector: str, expected: bool) -> None:
    assert labels_match(parse_label_selector(selector), LABELS) is expected


@pytest.mark.parametrize("selector", [
    "env in prod", "env=(x)", "=x", "env in (a", "size>x", "bad key=1", "env=has space",
])
def test_invalid_label_selector_is_a_400(selector: str) -> None:
    with pytest.raises(ApiError) as error:
        parse_label_selector(selector)
    assert error.value.code == 400


def test_labels_missing_entirely() -> None:
    assert labels_match(parse_label_selector("!a"), None)
    assert not labels_match(parse_label_selector("a"), None)


def test_field_selectors() -> None:
    obj = {"metadata": {"name": "a", "namespace": "ns"}, "status": {"phase": "Running"}}
    assert fields_match(parse_field_selector("metadata.name=a", "configmaps"), obj)
    assert fields_match(parse_field_selector("metadata.namespace!=other", "pods"), obj)
    assert not fields_match(parse_field_selector("metadata.name==b", "pods"), obj)
    assert fields_match(parse_field_selector("status.phase=Running", "pods"), obj)
    with pytest.raises(ApiError):
        parse_field_selector("status.phase=Running", "configmaps")
    event = {"metadata": {"name": "e"}, "involvedObject": {"uid": "u1", "kind": "Pod"},
             "source": {"component": "kopf"}}
    assert fields_match(parse_field_selector("involvedObject.uid=u1,source=kopf", "events"),
                        event)
