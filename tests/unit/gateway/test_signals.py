"""Wake and activity writes are rate-limited per environment, across visitors and replicas."""

from __future__ import annotations

from webordinary.gateway.signals import annotation_patch, due


def test_due_considers_our_writes_and_what_the_cluster_holds() -> None:
    assert due(None, None, 1000.0, 60)
    assert not due(970.0, None, 1000.0, 60), "we wrote 30 s ago"
    assert not due(None, 980.0, 1000.0, 60), "another replica (or Hermes) wrote 20 s ago"
    assert due(900.0, 930.0, 1000.0, 60)


def test_patches_are_the_shared_ones() -> None:
    assert annotation_patch("webordinary.dev/wake-requested-at", 1_795_000_000.7) == {
        "metadata": {"annotations": {"webordinary.dev/wake-requested-at":
                                     "2026-11-18T11:06:40Z"}}}
    assert annotation_patch("webordinary.dev/last-activity", 1_795_000_000) == {
        "metadata": {"annotations": {"webordinary.dev/last-activity": "2026-11-18T11:06:40Z"}}}
