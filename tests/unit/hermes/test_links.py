"""Reply mails carry signed preview links when the link keys are mounted."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlparse

from webordinary.contracts.links import QUERY_PARAMETER, keys_from_mapping, verify
from webordinary.hermes.links import PreviewLinks

NOW = 1_800_000_000.0


def test_signed_when_keys_are_mounted(tmp_path: Path) -> None:
    (tmp_path / "current").write_text("k" * 40 + "\n")
    links = PreviewLinks("https://edit.example.com", tmp_path, 3600, clock=lambda: NOW)
    url = urlparse(links.url("abc123"))
    assert url.path == "/session/abc123/"
    (token,) = parse_qs(url.query)[QUERY_PARAMETER]
    keys = keys_from_mapping({"current": "k" * 40})
    assert verify(keys, token, "abc123", NOW + 3599).ok
    assert not verify(keys, token, "abc124", NOW).ok


def test_plain_without_keys_and_unsigned_rather_than_no_reply(tmp_path: Path) -> None:
    assert PreviewLinks("https://e.x", None, 3600).url("abc") == "https://e.x/session/abc/"
    broken = PreviewLinks("https://e.x", tmp_path / "missing", 3600)
    assert broken.url("abc") == "https://e.x/session/abc/"
