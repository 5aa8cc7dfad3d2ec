"""Signed preview links: every way a token can be wrong is refused, rotation keeps links valid."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest
from hypothesis import given
from hypothesis import strategies as st

from webordinary.contracts.links import (
    QUERY_PARAMETER,
    LinkKey,
    LinkKeyError,
    LinkKeys,
    Verdict,
    keys_from_mapping,
    sign,
    signed_preview_url,
    verify,
)

OLD = LinkKey(b"o" * 32)
NEW = LinkKey(b"n" * 32)
KEYS = LinkKeys(NEW, OLD)
NOW = 1_800_000_000.0
THREAD = "1a2b3c4d5e6f7a8b"


def test_valid_until_expiry_then_expired() -> None:
    token = sign(KEYS, THREAD, int(NOW) + 60)
    assert verify(KEYS, token, THREAD, NOW).verdict is Verdict.VALID
    assert verify(KEYS, token, THREAD, NOW).expires == int(NOW) + 60
    assert verify(KEYS, token, THREAD, NOW + 60).verdict is Verdict.EXPIRED


def test_other_thread_is_refused() -> None:
    token = sign(KEYS, THREAD, int(NOW) + 60)
    assert verify(KEYS, token, "ffffffffffffffff", NOW).verdict is Verdict.BAD_SIGNATURE


@pytest.mark.parametrize("part", [1, 2, 3])
def test_tampered_parts_are_refused(part: int) -> None:
    token = sign(KEYS, THREAD, int(NOW) + 60)
    pieces = token.split(".")
    pieces[part] = {1: OLD.key_id, 2: str(int(NOW) + 10**6), 3: pieces[3][:-1] + "A"}[part]
    if pieces[3][-1] == "A" and part == 3:
        pieces[3] = pieces[3][:-1] + "B"
    assert not verify(KEYS, ".".join(pieces), THREAD, NOW).ok


@pytest.mark.parametrize(("token", "verdict"), [
    (None, Verdict.MISSING), ("", Verdict.MISSING), ("garbage", Verdict.MALFORMED),
    ("v2.a.1.b", Verdict.MALFORMED), ("v1.a.notanumber.b", Verdict.MALFORMED),
    ("v1.deadbeef.9999999999.x", Verdict.UNKNOWN_KEY), ("v1." + "a" * 200, Verdict.MALFORMED),
])
def test_malformed_tokens(token: str | None, verdict: Verdict) -> None:
    assert verify(KEYS, token, THREAD, NOW).verdict is verdict


def test_rotation_previous_key_still_verifies_a_dropped_one_does_not() -> None:
    before = LinkKeys(OLD)
    token = sign(before, THREAD, int(NOW) + 60)
    assert verify(KEYS, token, THREAD, NOW).ok, "signed with the previous key"
    assert sign(KEYS, THREAD, int(NOW) + 60).split(".")[1] == NEW.key_id, "signs with current"
    after = LinkKeys(NEW)
    assert verify(after, token, THREAD, NOW).verdict is Verdict.UNKNOWN_KEY


def test_keys_from_a_secret() -> None:
    keys = keys_from_mapping({"current": "n" * 32 + "\n", "previous": b"o" * 32})
    assert keys == KEYS
    assert keys_from_mapping({"current": "n" * 32, "previous": ""}).previous is None
    with pytest.raises(LinkKeyError):
        keys_from_mapping({"previous": "o" * 32})
    with pytest.raises(LinkKeyError):
        keys_from_mapping({"current": "short"})


def test_signed_url_and_plain_url() -> None:
    url = signed_preview_url("https://edit.example.com/", THREAD, KEYS, NOW, ttl_seconds=3600)
    parsed = urlparse(url)
    assert parsed.path == f"/session/{THREAD}/"
    (token,) = parse_qs(parsed.query)[QUERY_PARAMETER]
    assert verify(KEYS, token, THREAD, NOW + 3599).ok
    assert not verify(KEYS, token, THREAD, NOW + 3600).ok
    assert signed_preview_url("https://e.x", THREAD, None, NOW) == f"https://e.x/session/{THREAD}/"


@given(st.text(max_size=120))
def test_no_string_crashes_verify(token: str) -> None:
    assert verify(KEYS, token, THREAD, NOW).verdict is not Verdict.VALID
