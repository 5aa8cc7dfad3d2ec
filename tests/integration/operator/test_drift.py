"""No write loop: an unchanged environment with every optional spec field set costs zero API
writes over many drift ticks, on an emulator that stores objects as a real server does
(empty optional fields dropped, quantities canonical)."""

from __future__ import annotations

import time
from typing import Any

from tests.integration.operator.conftest import NAMESPACE, Harness, wait_for
from tests.unit.operator.test_drift import every_optional_field
from webordinary.contracts.environment import LABEL_CLIENT


def _settled(harness: Harness, name: str) -> dict[str, Any] | None:
    ee = harness.api.ee(name)
    status = (ee or {}).get("status") or {}
    deployment = harness.api.child("/apis/apps/v1", "deployments", f"{name}-editor")
    if ee and deployment and status.get("observedGeneration") == ee["metadata"]["generation"]:
        return ee
    return None


def test_unchanged_environment_with_every_optional_field_is_never_written(
    harness: Harness,
) -> None:
    api, kube = harness.api, harness.kube_api
    api.call("POST", f"/api/v1/namespaces/{NAMESPACE}/secrets", {
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "acme-git", "labels": {LABEL_CLIENT: "acme"}},
        "stringData": {"token": "t"}})
    name = "acme-site-ann"
    interval = 0.5
    with harness.run_operator(drift_interval_seconds=interval,
                              drift_initial_delay_seconds=interval) as runner:
        api.create_ee(name, every_optional_field())
        ee = wait_for(lambda: _settled(harness, name), what="reconciled with every child")
        assert not [c for c in ee["status"]["conditions"]
                    if c["reason"] in ("InvalidSpec", "Rejected", "ApplyFailed")], ee["status"]
        time.sleep(2.0)  # queued Events and the first ticks land
        before = dict(kube.write_counts())
        gets = kube.request_counts()["GET"]
        time.sleep(16 * interval)
        after = dict(kube.write_counts())
        reads = kube.request_counts()["GET"] - gets
    assert runner.exception is None
    assert reads >= 10 * 5, "drift ticks ran (each reads every child)"
    assert after == before, "an unchanged environment must not be written to"
