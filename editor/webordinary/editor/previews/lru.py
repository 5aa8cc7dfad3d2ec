"""Which dev servers to stop when another one must start: least recently used first."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence


def choose_evictions(active: Sequence[str], incoming: str, cap: int) -> list[str]:
    """Sessions to stop so that `incoming` fits under `cap` (`active` is LRU-first)."""
    if cap < 1:
        raise ValueError(f"the cap of active previews must be >= 1, got {cap}")
    others = [thread for thread in active if thread != incoming]
    excess = len(others) - (cap - 1)
    return others[:excess] if excess > 0 else []


class Recency:
    """Keys in order of last use, least recent first."""

    def __init__(self) -> None:
        self._order: OrderedDict[str, None] = OrderedDict()

    def touch(self, key: str) -> None:
        self._order[key] = None
        self._order.move_to_end(key)

    def discard(self, key: str) -> None:
        self._order.pop(key, None)

    def order(self) -> list[str]:
        return list(self._order)

    def __contains__(self, key: object) -> bool:
        return key in self._order

    def __len__(self) -> int:
        return len(self._order)
