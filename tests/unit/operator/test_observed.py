"""The watch cache never goes back in time: a late watch event does not replace a fresher read."""

from __future__ import annotations

from typing import Any

from webordinary.operator.observed import Observed


def pvc(version: str, phase: str) -> dict[str, Any]:
    return {"metadata": {"name": "ws", "namespace": "t", "resourceVersion": version},
            "status": {"phase": phase}}


def test_a_late_older_event_does_not_replace_a_fresher_read() -> None:
    observed = Observed()
    observed.wrote("PersistentVolumeClaim", pvc("120", "Bound"))  # the full reconcile's read
    observed.seen("PersistentVolumeClaim", pvc("97", "Pending"))  # its watch event, late
    kept = observed.get("PersistentVolumeClaim", "t", "ws")
    assert kept is not None
    assert kept["status"]["phase"] == "Bound"
    observed.seen("PersistentVolumeClaim", pvc("121", "Lost"))
    kept = observed.get("PersistentVolumeClaim", "t", "ws")
    assert kept is not None
    assert kept["status"]["phase"] == "Lost"


def test_unordered_versions_take_the_latest_arrival_and_deletion_is_final() -> None:
    observed = Observed()
    observed.seen("Deployment", pvc("b7", "Pending"))
    observed.seen("Deployment", pvc("a3", "Bound"))  # not numbers: no order to trust
    kept = observed.get("Deployment", "t", "ws")
    assert kept is not None
    assert kept["status"]["phase"] == "Bound"
    observed.seen("Deployment", pvc("1", "Bound"), deleted=True)
    assert observed.get("Deployment", "t", "ws") is None
