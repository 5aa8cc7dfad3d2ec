"""One function per derived name, so every component agrees on every identifier.

Rules: a name that is already clean and short enough is kept as is (``ameliastamps-website-john``);
anything that had to be changed or shortened gets ``--`` plus a hash of the *original* input.
Clean names never contain ``--``, sanitized prefixes never do either, so a hashed name can never
equal a clean one, and two hashed names only meet if the hash does (40 bits over the raw input).
"""

from __future__ import annotations

import functools
import hashlib
import re
from typing import Final

QUEUE_PREFIX: Final = "webordinary"
QUEUE_ROLES: Final = ("input", "output", "dlq")
SQS_NAME_MAX: Final = 80
DNS_LABEL_MAX: Final = 63
# The longest queue prefix is "webordinary-output-" (19 chars); the shared suffix must fit it.
QUEUE_SUFFIX_MAX: Final = SQS_NAME_MAX - len(f"{QUEUE_PREFIX}-output-")
# Children get a role suffix, Deployments want room for ReplicaSet/Pod hashes.
CHILD_NAME_MAX: Final = 52
HASH_LEN: Final = 10
# Names are pure functions of their parts, asked for again at every reconcile of every
# environment (the operator builds a few dozen per environment): the most recent are kept.
NAME_CACHE: Final = 16384
THREAD_ID_MAX: Final = 40

_CLEAN_PART = re.compile(r"^[a-z0-9]+$")
_NOT_DNS = re.compile(r"[^a-z0-9-]+")
_DASHES = re.compile(r"-{2,}")
# Environment names may carry a `--hash` themselves; the dash-free role keeps children injective.
_DNS_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")
THREAD_ID_RE: Final = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")


def short_hash(*parts: str) -> str:
    """Stable short digest of a tuple of strings (NUL-separated so tuples never blur)."""
    return hashlib.sha256("\x00".join(parts).encode("utf-8")).hexdigest()[:HASH_LEN]


def sanitize(value: str) -> str:
    """Lower-case DNS-1123 form: [a-z0-9-], no leading/trailing or doubled dashes."""
    cleaned = _NOT_DNS.sub("-", value.lower())
    return _DASHES.sub("-", cleaned).strip("-")


def _join(parts: tuple[str, ...], max_len: int, clean: re.Pattern[str] = _CLEAN_PART) -> str:
    """Join parts with '-'; hash-suffix when any part was not clean or the result too long."""
    if not parts:
        raise ValueError("at least one name part is required")
    plain = "-".join(parts)
    if all(clean.fullmatch(p) for p in parts) and len(plain) <= max_len:
        return plain
    digest = short_hash(*parts)
    prefix = sanitize(plain)[: max_len - len(digest) - 2].rstrip("-")
    return f"{prefix}--{digest}" if prefix else f"h--{digest}"


def container_id(client_id: str, project_id: str, user_id: str) -> str:
    """`{clientId}-{projectId}-{userId}`: the environment's identity and its CR name."""
    return _join((client_id, project_id, user_id), QUEUE_SUFFIX_MAX)


def environment_name(client_id: str, project_id: str, user_id: str) -> str:
    """The EditEnvironment object's name (Hermes creates it under this name)."""
    return container_id(client_id, project_id, user_id)


def queue_name(role: str, client_id: str, project_id: str, user_id: str) -> str:
    """`webordinary-{input|output|dlq}-{container id}`, always <= 80 chars of [a-z0-9-]."""
    if role not in QUEUE_ROLES:
        raise ValueError(f"unknown queue role {role!r}; expected one of {QUEUE_ROLES}")
    return f"{QUEUE_PREFIX}-{role}-{container_id(client_id, project_id, user_id)}"


def queue_names(client_id: str, project_id: str, user_id: str) -> dict[str, str]:
    """All three queue names of an environment, keyed by role."""
    return {role: queue_name(role, client_id, project_id, user_id) for role in QUEUE_ROLES}


@functools.lru_cache(maxsize=NAME_CACHE)
def child_name(environment: str, role: str) -> str:
    """Name of a Kubernetes child of an environment, e.g. `ameliastamps-website-john-editor`.

    `role` is one of a fixed set of dash-free words, so `{environment}-{role}` stays injective
    even though environment names contain dashes.
    """
    if not _CLEAN_PART.fullmatch(role) or re.fullmatch(f"[0-9a-f]{{{HASH_LEN}}}", role):
        raise ValueError(f"child role must match {_CLEAN_PART.pattern}: {role!r}")
    return _join((environment, role), CHILD_NAME_MAX, _DNS_NAME)


@functools.lru_cache(maxsize=NAME_CACHE)
def label_value(value: str) -> str:
    """A valid label value (<= 63, [a-z0-9-]) standing for `value`, hashed when altered."""
    return _join((value,), DNS_LABEL_MAX)


def is_thread_id(value: str) -> bool:
    """Thread ids go into paths, branch names and URLs: only a narrow alphabet is allowed."""
    return bool(THREAD_ID_RE.fullmatch(value))  # `$` would accept a trailing newline


def branch_name(thread_id: str) -> str:
    """`thread-{threadId}`: the git branch of one email thread (session)."""
    if not is_thread_id(thread_id):
        raise ValueError(f"invalid thread id {thread_id!r}: expected {THREAD_ID_RE.pattern}")
    return f"thread-{thread_id}"


def preview_path(thread_id: str) -> str:
    """`/session/{threadId}/`: where a session's preview is served (ingress and editor)."""
    if not is_thread_id(thread_id):
        raise ValueError(f"invalid thread id {thread_id!r}: expected {THREAD_ID_RE.pattern}")
    return f"/session/{thread_id}/"
