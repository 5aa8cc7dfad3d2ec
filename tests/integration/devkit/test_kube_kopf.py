"""A tiny real kopf operator against the emulator: finalizer, child with ownerReference,
status patch, delete handler, cascade of the child."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import kopf
import pytest
import requests
from kopf.testing import KopfRunner

from webordinary.devkit.kubeapi import KubeAPI

WIDGETS = "/apis/test.webordinary.dev/v1/namespaces/shop/widgets"
FINALIZER = "test.webordinary.dev/finalizer"


def wait_for(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {check}")


def make_registry(url: str, deleted: threading.Event) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.persistence.finalizer = FINALIZER
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
            prefix="test.webordinary.dev")
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix="test.webordinary.dev", key="last-handled-configuration")
        settings.watching.server_timeout = 30

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=url, insecure=True, scheme="Bearer", token="dummy")

    @kopf.on.create("test.webordinary.dev", "v1", "widgets", registry=registry)
    def create(body: kopf.Body, spec: kopf.Spec, name: str, namespace: str,
               patch: kopf.Patch, **_: Any) -> dict[str, str]:
        child: dict[str, Any] = {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": f"{name}-child"}, "data": {"owner": spec["owner"]},
        }
        kopf.adopt(child, owner=body)
        response = requests.post(f"{url}/api/v1/namespaces/{namespace}/configmaps",
                                 json=child, timeout=5)
        assert response.status_code in (201, 409), response.text
        patch.status["phase"] = "Ready"
        kopf.info(body, reason="ChildCreated", message=f"{name}-child")
        return {"child": f"{name}-child"}

    @kopf.on.delete("test.webordinary.dev", "v1", "widgets", registry=registry)
    def delete(**_: Any) -> None:
        deleted.set()

    return registry


@pytest.mark.parametrize("scope", [["-A"], ["--namespace=shop"]], ids=["cluster", "namespace"])
def test_kopf_operator_end_to_end(api: KubeAPI, scope: list[str]) -> None:
    deleted = threading.Event()
    registry = make_registry(api.url, deleted)
    args = ["run", "--standalone", *scope, "--verbose"]
    with KopfRunner(args, registry=registry, timeout=60) as runner:
        widget = {"apiVersion": "test.webordinary.dev/v1", "kind": "Widget",
                  "metadata": {"name": "w1"}, "spec": {"owner": "bob"}}
        created = requests.post(f"{api.url}{WIDGETS}", json=widget, timeout=5)
        assert created.status_code == 201, created.text

        def ready() -> dict[str, Any] | None:
            obj: dict[str, Any] = requests.get(f"{api.url}{WIDGETS}/w1", timeout=5).json()
            return obj if obj.get("status", {}).get("phase") == "Ready" else None

        obj = wait_for(ready)
        assert FINALIZER in obj["metadata"]["finalizers"]
        # the handler's result is not in the CRD's status schema: pruned like a real server
        assert set(obj["status"]) == {"phase"}
        child = requests.get(f"{api.url}/api/v1/namespaces/shop/configmaps/w1-child",
                             timeout=5).json()
        assert child["metadata"]["ownerReferences"][0]["uid"] == obj["metadata"]["uid"]

        def posted() -> bool:
            events = requests.get(f"{api.url}/api/v1/namespaces/shop/events", timeout=5).json()
            return any(e["involvedObject"]["uid"] == obj["metadata"]["uid"]
                       for e in events["items"])

        wait_for(posted)

        gone = requests.delete(f"{api.url}{WIDGETS}/w1", timeout=5)
        assert gone.status_code == 200
        assert gone.json()["metadata"]["deletionTimestamp"]
        wait_for(deleted.is_set)
        wait_for(lambda: requests.get(f"{api.url}{WIDGETS}/w1", timeout=5).status_code == 404)
        wait_for(lambda: requests.get(f"{api.url}/api/v1/namespaces/shop/configmaps/w1-child",
                                      timeout=5).status_code == 404)
    assert runner.exception is None, runner.output
    assert "Traceback" not in runner.output, runner.output
    counts = api.request_counts()
    assert counts["WATCH"] >= 1
    assert counts["PATCH"] >= 2
