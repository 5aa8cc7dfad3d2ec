"""One error type for every failed API call."""

from __future__ import annotations

import json
from typing import Any


class KubeError(Exception):
    """An API answer other than success, or no answer at all (`status` 0).

    `transient` failures are worth retrying later: conflicts, throttling, server errors and an
    unreachable server; the rest (400, 403, 404 on writes, 422) will fail the same way again.
    """

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def transient(self) -> bool:
        return self.status in (0, 409, 429) or self.status >= 500

    @classmethod
    def from_response(cls, status: int, payload: bytes) -> KubeError:
        """The error for an answer: a Status object's reason and message when there is one."""
        reason, message = "", payload[:500].decode(errors="replace")
        try:
            body: Any = json.loads(payload)
        except ValueError:
            body = None
        if isinstance(body, dict):
            reason = str(body.get("reason") or "")
            message = str(body.get("message") or message)
        kind = Conflict if status == 409 or _failed_test(status, message) else cls
        return kind(status, reason or _REASONS.get(status, "Error"), message)


class Conflict(KubeError):
    """409 (exists already, or a stale resourceVersion) or a JSON patch whose `test` failed
    (422): re-read the object and decide again."""


def _failed_test(status: int, message: str) -> bool:
    return status == 422 and "test" in message.lower()


_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
            405: "MethodNotAllowed", 409: "Conflict", 410: "Expired", 415: "UnsupportedMediaType",
            422: "Invalid", 429: "TooManyRequests", 500: "InternalError",
            503: "ServiceUnavailable", 504: "Timeout"}
