"""The routing table: watch events in, resolutions out; memory stays small at 5,000 environments."""

from __future__ import annotations

import time
import tracemalloc
from typing import Any

from webordinary.gateway.routes import (
    Backend,
    Failed,
    RouteTable,
    Serve,
    Starting,
    Suspended,
    Unknown,
    parse_time,
)


def ee(name: str, sessions: list[str], ns: str = "t", *, phase: str = "Ready",
       annotations: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"namespace": ns, "name": name, "annotations": annotations or {}},
            "spec": {"sessions": sessions, **spec}, "status": {"phase": phase}}


def eps(service: str, port: int | None, ready: bool = True, ns: str = "t",
        name: str | None = None) -> dict[str, Any]:
    return {"metadata": {"namespace": ns, "name": name or f"{service}-abcde",
                         "labels": {"kubernetes.io/service-name": service}},
            "ports": [] if port is None else [{"name": "preview", "port": port},
                                              {"name": "metrics", "port": 9090}],
            "endpoints": [{"addresses": ["10.0.0.7"], "conditions": {"ready": ready}}]}


def test_session_add_and_remove() -> None:
    table = RouteTable()
    table.upsert_environment(ee("env-a", ["t1", "t2"]))
    table.upsert_slice(eps("env-a-editor", 4321))
    resolution = table.resolve("t1")
    assert isinstance(resolution, Serve)
    assert resolution.backend == Backend("10.0.0.7", 4321)
    assert resolution.backend.base_url == "http://10.0.0.7:4321"
    table.upsert_environment(ee("env-a", ["t2", "t3"]))
    assert isinstance(table.resolve("t1"), Unknown)
    assert isinstance(table.resolve("t3"), Serve)
    table.delete_environment(ee("env-a", []))
    assert isinstance(table.resolve("t2"), Unknown)
    assert table.size == 0


def test_no_ready_endpoint_means_starting_failed_or_suspended() -> None:
    table = RouteTable()
    table.upsert_environment(ee("env-a", ["t1"], phase="Sleeping"))
    assert isinstance(table.resolve("t1"), Starting)
    table.upsert_slice(eps("env-a-editor", 4321, ready=False))
    assert isinstance(table.resolve("t1"), Starting), "a pod that is not ready yet"
    table.upsert_environment(ee("env-a", ["t1"], phase="Failed"))
    assert isinstance(table.resolve("t1"), Failed)
    table.upsert_environment(ee("env-a", ["t1"], suspend=True))
    assert isinstance(table.resolve("t1"), Suspended)
    table.upsert_slice(eps("env-a-editor", 4321, ready=True))
    assert isinstance(table.resolve("t1"), Serve), "a serving editor is served whatever the phase"
    table.delete_slice(eps("env-a-editor", 4321))
    assert isinstance(table.resolve("t1"), Suspended)


def test_terminating_endpoints_and_missing_port_are_not_backends() -> None:
    table = RouteTable()
    table.upsert_environment(ee("env-a", ["t1"]))
    slice_ = eps("env-a-editor", 4321)
    slice_["endpoints"][0]["conditions"] = {"ready": True, "terminating": True}
    table.upsert_slice(slice_)
    assert isinstance(table.resolve("t1"), Starting)
    table.upsert_slice(eps("env-a-editor", None))
    assert isinstance(table.resolve("t1"), Starting)


def test_a_thread_claimed_by_two_environments_is_served_by_neither() -> None:
    table = RouteTable()
    table.upsert_environment(ee("env-a", ["t1"]))
    table.upsert_environment(ee("env-b", ["t1"], ns="other"))
    table.upsert_slice(eps("env-a-editor", 4321))
    assert isinstance(table.resolve("t1"), Unknown)
    table.delete_environment(ee("env-b", [], ns="other"))
    assert isinstance(table.resolve("t1"), Serve)


def test_relist_replaces_what_was_missed() -> None:
    table = RouteTable()
    table.upsert_environment(ee("env-a", ["t1"]))
    table.upsert_environment(ee("env-b", ["t2"], ns="other"))
    table.replace_environments([ee("env-c", ["t3"])], "t")
    assert isinstance(table.resolve("t1"), Unknown), "deleted while the watch was down"
    assert isinstance(table.resolve("t2"), Starting), "another namespace's list leaves it"
    assert isinstance(table.resolve("t3"), Starting)
    table.upsert_slice(eps("env-c-editor", 4321))
    table.replace_slices([])
    assert isinstance(table.resolve("t3"), Starting)


def test_deleting_environment_and_bad_sessions() -> None:
    table = RouteTable()
    obj = ee("env-a", ["t1", "../x", "UPPER"])
    obj["metadata"]["deletionTimestamp"] = "2026-11-28T10:00:00Z"
    table.upsert_environment(obj)
    assert table.size == 1
    assert isinstance(table.resolve("t1"), Unknown)


def test_annotations_are_read_as_times() -> None:
    table = RouteTable()
    table.upsert_environment(ee("env-a", ["t1"], annotations={
        "webordinary.dev/wake-requested-at": "2026-11-28T15:00:00Z",
        "webordinary.dev/last-activity": "nonsense"}))
    environment = table.environments[("t", "env-a")]
    assert environment.wake_requested == parse_time("2026-11-28T15:00:00+00:00")
    assert environment.activity is None
    assert parse_time("2026-11-28T15:00:00") is None, "no time zone: unreadable"


def test_five_thousand_environments_are_cheap() -> None:
    objects = [ee(f"client{i}-website-user", [f"{i:08x}{j:08x}" for j in range(3)])
               for i in range(5000)]
    tracemalloc.start()
    began = time.perf_counter()
    table = RouteTable()
    table.replace_environments(objects)
    for i in range(0, 5000, 2):
        table.upsert_slice(eps(f"client{i}-website-user-editor", 4321))
    elapsed = time.perf_counter() - began
    size, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert table.size == 15000
    assert len(table.backends) == 2500
    assert isinstance(table.resolve(f"{4998:08x}{2:08x}"), Serve)
    assert isinstance(table.resolve(f"{4999:08x}{0:08x}"), Starting)
    assert size < 20 * 1024 * 1024, f"{size / 2**20:.1f} MiB for the table"
    assert elapsed < 5.0
