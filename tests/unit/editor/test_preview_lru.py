"""LRU choice of dev servers to stop."""

from __future__ import annotations

import pytest

from webordinary.editor.previews.lru import Recency, choose_evictions


@pytest.mark.parametrize(
    ("active", "incoming", "cap", "evicted"),
    [
        ([], "a", 2, []),
        (["a"], "b", 2, []),
        (["a", "b"], "c", 2, ["a"]),
        (["a", "b"], "a", 2, []),
        (["a", "b"], "b", 2, []),
        (["a", "b", "c"], "d", 2, ["a", "b"]),
        (["a", "b", "c"], "b", 2, ["a"]),
        (["a"], "b", 1, ["a"]),
        (["a"], "a", 1, []),
        (["a", "b", "c"], "d", 5, []),
    ],
)
def test_choose_evictions(active: list[str], incoming: str, cap: int, evicted: list[str]) -> None:
    assert choose_evictions(active, incoming, cap) == evicted


def test_cap_must_be_positive() -> None:
    with pytest.raises(ValueError, match=">= 1"):
        choose_evictions([], "a", 0)


def test_recency_orders_by_last_touch() -> None:
    recency = Recency()
    for key in ("a", "b", "c"):
        recency.touch(key)
    recency.touch("a")
    assert recency.order() == ["b", "c", "a"]
    recency.discard("c")
    recency.discard("missing")
    assert recency.order() == ["b", "a"]
    assert "a" in recency
    assert "c" not in recency
    assert len(recency) == 2
    assert choose_evictions([*recency.order()], "d", 2) == ["b"]
