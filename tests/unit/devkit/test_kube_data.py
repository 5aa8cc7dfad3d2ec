"""The emulator's JSON (devkit kube/data.py): orjson where it writes what the standard
library writes, the standard library for what orjson refuses (no HTTP)."""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest

from webordinary.devkit.kube.data import dumps, loads


def standard(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


@pytest.mark.parametrize("value", [
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {}},
     "data": {"k": "v", "q": 'a "b" \\ c\n\t'}, "n": [1, -2, 1.5, 0.25, True, None]},
    [], {}, "", 0, 2**63 - 1, -(2**63), 0.1,
])
def test_json_shaped_data_is_written_as_the_standard_library_writes_it(value: Any) -> None:
    assert dumps(value) == standard(value)
    assert loads(dumps(value)) == value


@pytest.mark.parametrize("number", [1e-7, 1.5e-5, 1e300, 1e22, 5e-324, 0.1, -0.0])
def test_numbers_keep_their_value(number: float) -> None:
    """Small and large numbers may be spelled otherwise (1e-7, not 1e-07; 0.000015, as Go
    writes it), never with another value."""
    assert json.loads(dumps({"n": number})) == {"n": number}


@pytest.mark.parametrize("value", [
    {1: "a", "b": 2},  # a key that is not a string (a YAML body's)
    {"big": 2**64}, {"small": -(2**63) - 1},  # integers beyond 64 bits
])
def test_what_orjson_refuses_is_written_by_the_standard_library(value: Any) -> None:
    assert dumps(value) == standard(value)


def test_what_the_standard_library_refuses_is_still_refused() -> None:
    with pytest.raises(TypeError):
        dumps({"when": datetime.date(2026, 1, 1)})


def test_text_in_any_script_round_trips() -> None:
    value = {"k": "héllo ✓ 日本 \U0001f600"}
    assert loads(dumps(value)) == value
    assert json.loads(dumps(value)) == value


@pytest.mark.parametrize("text", [b"NaN", b'{"a": Infinity}', b"{not json", b'"\xff"'])
def test_documents_go_refuses_are_refused(text: bytes) -> None:
    with pytest.raises(ValueError, match=r"."):
        loads(text)


def test_where_decoding_differs_from_go() -> None:
    """The README's not-enforced list: an unpaired surrogate is refused (Go writes U+FFFD),
    integers up to 2^64 - 1 stay integers (Go makes those beyond 2^63 - 1 floats)."""
    with pytest.raises(ValueError, match="surrogate"):
        loads(b'"\\ud800"')
    assert loads(b"18446744073709551615") == 2**64 - 1
