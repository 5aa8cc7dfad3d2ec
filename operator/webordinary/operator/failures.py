"""AWS failures as the operator reports them: a condition reason, and whether to retry."""

from __future__ import annotations


class AwsFailure(Exception):
    """An AWS problem with a condition reason; `transient` ones are retried with backoff."""

    def __init__(self, reason: str, message: str, *, transient: bool, delay: float | None = None):
        super().__init__(message)
        self.reason = reason
        self.transient = transient
        self.delay = delay
