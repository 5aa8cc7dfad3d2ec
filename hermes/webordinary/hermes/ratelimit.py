"""Per-address hourly budget for polite replies to strangers (no mail ping-pong)."""

from __future__ import annotations

from collections import deque


class ReplyBudget:
    """At most `per_hour` replies per address in any sliding hour."""

    def __init__(self, per_hour: int) -> None:
        self.per_hour = per_hour
        self._sent: dict[str, deque[float]] = {}

    def allow(self, address: str, now: float) -> bool:
        """Take one reply from the address' budget if there is one left."""
        window = self._sent.setdefault(address.lower(), deque())
        while window and now - window[0] >= 3600:
            window.popleft()
        if len(window) >= self.per_hour:
            return False
        window.append(now)
        if len(self._sent) > 10_000:  # forget idle addresses; memory stays bounded
            for key in [k for k, v in self._sent.items() if not v]:
                del self._sent[key]
        return True

    def refund(self, address: str) -> None:
        """Give back the reply last taken (it could not be sent)."""
        window = self._sent.get(address.lower())
        if window:
            window.pop()
