"""The operator's garbage-collection policy: freeze what survives a full collection."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from webordinary.operator.heap import FreezeAfterFull


@pytest.fixture
def clock() -> Iterator[list[float]]:
    """A settable clock; automatic collections are off meanwhile (only the test's own run)."""
    now = [0.0]
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield now
    finally:
        gc.unfreeze()  # the test process's heap is not the operator's
        if enabled:
            gc.enable()


class Node:
    """An object that can sit in a reference cycle."""

    def __init__(self) -> None:
        self.other: object = None


def test_a_full_collection_freezes_the_survivors_and_young_ones_skip_them(
        clock: list[float]) -> None:
    policy = FreezeAfterFull(unfreeze_seconds=3600, clock=lambda: clock[0])
    policy.install()
    try:
        survivors = [{"kept": i} for i in range(1000)]
        gc.collect(1)
        assert gc.get_freeze_count() == 0
        assert policy.freezes == 0
        gc.collect()
        assert policy.freezes == 1
        assert gc.get_freeze_count() >= len(survivors)
        assert not any(o is survivors for o in gc.get_objects(generation=2))
    finally:
        policy.uninstall()


def test_cycles_allocated_after_a_freeze_are_still_collected(clock: list[float]) -> None:
    policy = FreezeAfterFull(unfreeze_seconds=3600, clock=lambda: clock[0])
    policy.install()
    try:
        gc.collect()
        a, b = Node(), Node()
        a.other, b.other = b, a
        alive = weakref.ref(a)
        del a, b
        gc.collect()
        assert alive() is None
    finally:
        policy.uninstall()


def test_once_per_interval_the_heap_is_unfrozen_and_its_dead_cycles_freed(
        clock: list[float]) -> None:
    policy = FreezeAfterFull(unfreeze_seconds=3600, clock=lambda: clock[0])
    policy.install()
    try:
        a, b = Node(), Node()
        a.other, b.other = b, a
        gc.collect()  # a and b survive it and are frozen
        alive = weakref.ref(a)
        del a, b  # now a cycle among frozen objects: no collection sees it
        gc.collect()
        assert alive() is not None
        clock[0] = 3600.0
        gc.collect()  # due: unfrozen instead of frozen
        assert policy.unfreezes == 1
        assert gc.get_freeze_count() == 0
        gc.collect()  # the whole heap again: the dead cycle is freed
        assert alive() is None
        assert gc.get_freeze_count() > 0  # and frozen after it, as before
    finally:
        policy.uninstall()
