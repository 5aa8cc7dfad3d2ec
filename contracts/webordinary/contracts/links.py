"""Signed preview links: a token that says "this thread's preview, until then" (pure, no I/O).

Hermes signs, the gateway verifies; both read the same keys (a Secret with a `current` and an
optional `previous` key). A token is `v1.{keyId}.{expiry}.{mac}`: the key id is derived from
the key itself, so rotating keys needs no extra bookkeeping, and the MAC covers the version,
the key id, the thread id and the expiry (a token for one thread is worthless on another).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final
from urllib.parse import urlencode

from webordinary.contracts.naming import is_thread_id, preview_path

VERSION: Final = "v1"
# The query parameter of an emailed link (not `token`: Vite's HMR websocket uses that one).
QUERY_PARAMETER: Final = "access"
# The cookie the gateway sets once a link checked out, scoped to the session's path.
COOKIE_NAME: Final = "webordinary_preview"
KEY_NAMES: Final = ("current", "previous")
MIN_KEY_BYTES: Final = 32
DEFAULT_TTL_SECONDS: Final = 14 * 24 * 3600
KEY_ID_LEN: Final = 8
_MAX_TOKEN_LEN: Final = 128


class Verdict(StrEnum):
    """Why a token was accepted or refused (the gateway counts these; users see one page)."""

    VALID = "valid"
    MISSING = "missing"
    MALFORMED = "malformed"
    UNKNOWN_KEY = "unknown_key"
    BAD_SIGNATURE = "bad_signature"  # tampered, or issued for another thread
    EXPIRED = "expired"


class LinkKeyError(ValueError):
    """A signing key that is too short or otherwise unusable."""


@dataclass(frozen=True)
class LinkKey:
    """One HMAC key and the id tokens signed with it carry."""

    secret: bytes

    def __post_init__(self) -> None:
        if len(self.secret) < MIN_KEY_BYTES:
            raise LinkKeyError(f"a link key needs at least {MIN_KEY_BYTES} bytes, "
                            f"got {len(self.secret)}")

    @property
    def key_id(self) -> str:
        return hashlib.sha256(b"webordinary-link-key\x00" + self.secret).hexdigest()[:KEY_ID_LEN]


@dataclass(frozen=True)
class LinkKeys:
    """The signing key (`current`) and every key still accepted (`current`, `previous`)."""

    current: LinkKey
    previous: LinkKey | None = None

    def by_id(self, key_id: str) -> LinkKey | None:
        for key in (self.current, self.previous):
            if key is not None and hmac.compare_digest(key.key_id, key_id):
                return key
        return None


def keys_from_mapping(values: Mapping[str, str | bytes]) -> LinkKeys:
    """LinkKeys from a Secret's data (`current` required, `previous` optional).

    Surrounding whitespace (a trailing newline from `echo` or a file) is not part of a key.
    """
    def key(name: str) -> LinkKey | None:
        raw = values.get(name)
        if raw is None:
            return None
        data = (raw.encode() if isinstance(raw, str) else raw).strip()
        return LinkKey(data) if data else None

    current = key("current")
    if current is None:
        raise LinkKeyError("the link keys need a non-empty `current` key")
    previous = key("previous")
    if previous is not None and previous.key_id == current.key_id:
        previous = None
    return LinkKeys(current, previous)


def _mac(key: LinkKey, thread_id: str, expires: int) -> str:
    message = "\x00".join((VERSION, key.key_id, thread_id, str(expires))).encode()
    digest = hmac.new(key.secret, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign(keys: LinkKeys, thread_id: str, expires: int) -> str:
    """A token for `thread_id` valid until `expires` (Unix seconds), signed with `current`."""
    if not is_thread_id(thread_id):
        raise ValueError(f"invalid thread id {thread_id!r}")
    if expires <= 0:
        raise ValueError("expiry must be a positive Unix time")
    key = keys.current
    return f"{VERSION}.{key.key_id}.{expires}.{_mac(key, thread_id, expires)}"


@dataclass(frozen=True)
class Check:
    verdict: Verdict
    expires: int | None = None

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.VALID


def verify(keys: LinkKeys, token: str | None, thread_id: str, now: float) -> Check:
    """Whether `token` grants `thread_id`'s preview at `now` (Unix seconds)."""
    if not token:
        return Check(Verdict.MISSING)
    if len(token) > _MAX_TOKEN_LEN:
        return Check(Verdict.MALFORMED)
    parts = token.split(".")
    if len(parts) != 4 or parts[0] != VERSION or not parts[2].isdigit():
        return Check(Verdict.MALFORMED)
    _, key_id, expiry, mac = parts
    key = keys.by_id(key_id)
    if key is None:
        return Check(Verdict.UNKNOWN_KEY)
    expires = int(expiry)
    if not is_thread_id(thread_id) or not hmac.compare_digest(
        _mac(key, thread_id, expires), mac
    ):
        return Check(Verdict.BAD_SIGNATURE)
    if expires <= now:
        return Check(Verdict.EXPIRED, expires)
    return Check(Verdict.VALID, expires)


def signed_preview_url(
    base_url: str, thread_id: str, keys: LinkKeys | None, now: float,
    ttl_seconds: int = DEFAULT_TTL_SECONDS,
) -> str:
    """`{base}/session/{threadId}/?access=TOKEN`, or the plain link when signing is off."""
    url = base_url.rstrip("/") + preview_path(thread_id)
    if keys is None:
        return url
    token = sign(keys, thread_id, int(now) + ttl_seconds)
    return f"{url}?{urlencode({QUERY_PARAMETER: token})}"
