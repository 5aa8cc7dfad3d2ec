"""Pure rules for getting a session branch into the customer's repository: how to read a
failed push, when to retry, and what to call the side branch of a conflict."""

from __future__ import annotations

import re
from enum import StrEnum

SIDE_BRANCH_LIMIT = 100

_MOVED = ("fetch first", "non-fast-forward", "stale info", "[rejected]")
_TRANSIENT = (
    "could not resolve host", "connection refused", "connection timed out",
    "operation timed out", "timed out", "early eof", "remote end hung up",
    "rpc failed", "failed to connect", "couldn't connect", "connection reset",
    "the requested url returned error: 5", "http 5", "internal server error",
    "service unavailable", "bad gateway", "temporarily", "try again",
    "no space left",
)
_HINT = re.compile(r"^\s*(hint:|To |Everything up-to-date)")


class PushFailure(StrEnum):
    MOVED = "moved"  # the remote branch has commits we do not: integrate, push again
    TRANSIENT = "transient"  # network or server trouble: retry with backoff
    PERMANENT = "permanent"  # credentials, permissions, protection: retrying does not help


def classify(output: str) -> PushFailure:
    """What a failed `git push` means, from its output (stderr + porcelain stdout)."""
    text = output.lower()
    if "no space left" in text:
        return PushFailure.PERMANENT
    if any(marker in text for marker in _MOVED) and "denied" not in text \
            and "protected" not in text and "declined" not in text:
        return PushFailure.MOVED
    if any(marker in text for marker in _TRANSIENT):
        return PushFailure.TRANSIENT
    return PushFailure.PERMANENT


def reason(output: str, limit: int = 300) -> str:
    """One readable line from git's output: the error, not the hints."""
    lines = [line.strip() for line in output.splitlines()
             if line.strip() and not _HINT.match(line)]
    for prefix in ("fatal:", "error:", "remote: error", "remote:", "!"):
        for line in lines:
            if line.lower().startswith(prefix):
                return line[:limit]
    return (lines[-1] if lines else "git push failed")[:limit]


def plain(error: str | None) -> str:
    """Why a push failed, in words for the customer (the git line stays in `push.error`)."""
    text = (error or "").lower()
    if any(word in text for word in ("denied", "403", "401", "authentication", "permission")):
        return "the repository did not accept the editor's access"
    if classify(text) is PushFailure.TRANSIENT:
        return "the repository could not be reached"
    return "the repository did not accept it"


def backoff(attempt: int, base: float, cap: float = 30.0) -> float:
    """Seconds before retry number `attempt` (1-based): base, 2*base, 4*base ... capped."""
    return float(min(cap, base * 2 ** (attempt - 1)))


def side_branch(branch: str, taken: dict[int, bool]) -> str:
    """`{branch}-conflict-{n}`: the first n that is free, or that holds only our own history
    (`taken[n]` is True when the remote side branch n is an ancestor of our work)."""
    for n in range(1, SIDE_BRANCH_LIMIT + 1):
        if n not in taken or taken[n]:
            return f"{branch}-conflict-{n}"
    raise RuntimeError(f"more than {SIDE_BRANCH_LIMIT} conflict branches for {branch}")


def side_numbers(branch: str, refs: list[str]) -> list[int]:
    """The n of every `refs/heads/{branch}-conflict-{n}` in an ls-remote listing."""
    pattern = re.compile(rf"refs/heads/{re.escape(branch)}-conflict-(\d+)$")
    return sorted(int(m.group(1)) for ref in refs if (m := pattern.search(ref.strip())))
