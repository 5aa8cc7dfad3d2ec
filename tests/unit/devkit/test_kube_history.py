"""The emulator's watch history window (devkit kube/store.py): events past it are forgotten at
once (a watch from before them is 410 Gone) but freed a few per write, so that no single write
stands the emulator still freeing thousands (no HTTP: the emulator's Store)."""

from __future__ import annotations

import time

import pytest

from webordinary.devkit.kube.errors import ApiError
from webordinary.devkit.kube.store import EXPIRE_PER_WRITE, Store, Watcher


def config_map(name: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default"}, "data": {"a": "b"}}


def test_past_the_window_events_are_forgotten_at_once_and_freed_a_few_per_write() -> None:
    store = Store(history_seconds=0.2)
    resource = store.find("", "v1", "configmaps")
    assert resource is not None
    versions = [store.create(resource, "default", config_map(f"c{i}"))[0]["metadata"]
                ["resourceVersion"] for i in range(3 * EXPIRE_PER_WRITE)]
    time.sleep(0.3)
    newest = store.create(resource, "default", config_map("later"))[0]
    history = store.history[resource.storage_key]
    assert len(history) == 2 * EXPIRE_PER_WRITE + 1  # one write freed EXPIRE_PER_WRITE

    def watch(since: str) -> list[object]:
        return store.subscribe(Watcher(resource, "default", None, [], []), int(since),
                               initial=False)

    with pytest.raises(ApiError) as gone:  # held, not yet freed: forgotten all the same
        watch(versions[-2])  # the event after it is past the window
    assert gone.value.code == 410
    assert store.gone_count == 1
    assert [e.rv for _, e in watch(versions[-1])] == [int(newest["metadata"]["resourceVersion"])]
    for i in range(2):
        store.create(resource, "default", config_map(f"more{i}"))
    assert len(history) == 3  # the rest freed by the next writes
