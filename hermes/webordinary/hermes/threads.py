"""Which conversation (session) a mail belongs to, as a short stable thread id.

A thread id is 16 hex digits of a sha256 over the conversation's root key. The root key is,
in order: the first entry of References (the conversation's first message), Outlook's
Thread-Index conversation GUID (when References are missing), the In-Reply-To parent, else the
mail's own Message-ID. Every key a mail carries is also an *alias*: when Hermes already knows
any of them (a registry of keys it has seen), the known thread wins, so mixed clients (an
Outlook reply without References to a Gmail message, or to Hermes' own reply) stay in one
session.

Ids and registry keys are scoped by environment (client-project-user): two users in one
conversation get two sessions, and nobody can steer mail into another tenant's session (or its
preview path) by quoting that tenant's Message-IDs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from webordinary.contracts.naming import is_thread_id
from webordinary.hermes.mail import ParsedMail

THREAD_HASH_LEN = 16
_PROVIDER_ID = re.compile(r"^[A-Za-z0-9._-]{8,200}$")
# Thread-Index: 1 reserved byte + 5 bytes FILETIME + 16 bytes conversation GUID, then
# 5-byte child blocks for each reply. The first 22 bytes identify the conversation.
_THREAD_INDEX_HEADER = 22


@dataclass(frozen=True)
class ThreadKeys:
    """The keys of one mail: the root it would start a thread from, and every alias."""

    root: str
    aliases: tuple[str, ...] = field(default_factory=tuple)
    own: tuple[str, ...] = field(default_factory=tuple)
    """Keys this mail adds for later mails (its Message-ID, its Thread-Index conversation)."""


def thread_index_key(value: str | None) -> str | None:
    """`ti:<hex>` of an Outlook Thread-Index's conversation part, None if unusable."""
    if not value:
        return None
    try:
        raw = base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) < _THREAD_INDEX_HEADER:
        return None
    return "ti:" + raw[6:_THREAD_INDEX_HEADER].hex()


SES_DOMAIN = "amazonses.com"


def mid_key(message_id: str) -> str:
    """Registry key of a Message-ID (case of the domain part does not matter).

    Every SES form (`@email.amazonses.com`, regional `@eu-west-1.amazonses.com`, ...) maps to
    one key, because SES rewrites the Message-ID of what Hermes sends to
    `<{MessageId}@{some SES domain}>` and which domain depends on the region.
    """
    local, at, domain = message_id.strip().partition("@")
    domain = domain.lower()
    if domain == SES_DOMAIN or domain.endswith("." + SES_DOMAIN):
        domain = SES_DOMAIN
    return f"mid:{local}{at}{domain}"


def sent_keys(header_id: str, provider_id: str | None) -> list[str]:
    """Registry keys of a mail Hermes sent: the Message-ID it wrote, and the one SES put in
    its place (`{MessageId}@amazonses.com`, `provider_id` being what SendRawEmail returned)."""
    keys = [mid_key(header_id)]
    if provider_id and _PROVIDER_ID.match(provider_id):
        keys.append(mid_key(f"{provider_id}@{SES_DOMAIN}"))
    return keys


def thread_keys(mail: ParsedMail, fallback: str = "") -> ThreadKeys:
    """Root key and aliases of a mail; `fallback` (e.g. SES message id) when it has no ids."""
    refs = [mid_key(r) for r in mail.references]
    parents = [mid_key(r) for r in mail.in_reply_to]
    ti = thread_index_key(mail.thread_index)
    own_mid = mid_key(mail.message_id) if mail.message_id else None
    if refs:
        root = refs[0]
    elif ti:
        root = ti
    elif parents:
        root = parents[0]
    elif own_mid:
        root = own_mid
    else:
        root = f"raw:{fallback}"
    aliases = tuple(dict.fromkeys([*refs, *parents, *([ti] if ti else [])]))
    own = tuple(k for k in (own_mid, ti) if k)
    return ThreadKeys(root=root, aliases=aliases, own=own)


def scoped(key: str, scope: str) -> str:
    """Registry key of `key` within an environment (`scope`)."""
    return f"{scope}|{key}" if scope else key


def thread_id_of_key(key: str, scope: str = "") -> str:
    """The thread id a root key starts: 16 hex of its sha256 (valid per naming rules)."""
    basis = f"{scope}\x00{key}" if scope else key
    value = hashlib.sha256(basis.encode("utf-8")).hexdigest()[:THREAD_HASH_LEN]
    assert is_thread_id(value)
    return value


def resolve_thread(
    keys: ThreadKeys, known: Mapping[str, str] | None = None, scope: str = ""
) -> str:
    """The thread id: the first alias already known, else a new id from the root key."""
    if known:
        for alias in keys.aliases:
            found = known.get(scoped(alias, scope))
            if found:
                return found
    return thread_id_of_key(keys.root, scope)


def thread_id(mail: ParsedMail, known: Mapping[str, str] | None = None, scope: str = "") -> str:
    """Convenience: the thread id of a parsed mail."""
    return resolve_thread(thread_keys(mail), known, scope)


def learn(keys: ThreadKeys, thread: str, scope: str = "") -> dict[str, str]:
    """Registry entries to remember after placing a mail in `thread`."""
    return {scoped(key, scope): thread for key in (*keys.aliases, *keys.own, keys.root)}
