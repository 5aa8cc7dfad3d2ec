"""The real operator (kopf, in-process) against the emulator and moto, plus small helpers."""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import kopf
import pytest
from kopf.testing import KopfRunner

from tests.integration.operator.sqsproxy import SqsProxy
from tests.plugins.kubelet import kubelet_running
from webordinary.contracts.environment import API_VERSION, KIND, PLURAL
from webordinary.devkit.aws import MotoServer
from webordinary.devkit.kubeapi import KubeAPI
from webordinary.devkit.kubelet import LocalKubelet
from webordinary.operator.handlers import register
from webordinary.operator.settings import OperatorSettings

NAMESPACE = "tenants"
EE_PATH = f"/apis/{API_VERSION}/namespaces/{{ns}}/{PLURAL}"


class ApiError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body


@dataclass
class Api:
    """A plain HTTP client for test set-up and assertions (not the operator's adapter)."""

    url: str

    def call(self, method: str, path: str, body: Any = None,
             content_type: str = "application/json") -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": content_type})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            text = error.read().decode()
            if error.code == 404 and method in ("GET", "DELETE"):
                return None
            raise ApiError(error.code, text) from error

    def get(self, path: str) -> Any:
        return self.call("GET", path)

    def ee(self, name: str, ns: str = NAMESPACE) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self.get(EE_PATH.format(ns=ns) + f"/{name}")
        return result

    def create_ee(self, name: str, spec: dict[str, Any], ns: str = NAMESPACE,
                  annotations: dict[str, str] | None = None) -> dict[str, Any]:
        body = {"apiVersion": API_VERSION, "kind": KIND,
                "metadata": {"name": name, "namespace": ns, "annotations": annotations or {}},
                "spec": spec}
        result: dict[str, Any] = self.call("POST", EE_PATH.format(ns=ns), body)
        return result

    def patch_ee(self, name: str, patch: dict[str, Any], ns: str = NAMESPACE) -> Any:
        return self.call("PATCH", EE_PATH.format(ns=ns) + f"/{name}", patch,
                         "application/merge-patch+json")

    def delete_ee(self, name: str, ns: str = NAMESPACE) -> Any:
        return self.call("DELETE", EE_PATH.format(ns=ns) + f"/{name}")

    def child(self, group_path: str, plural: str, name: str, ns: str = NAMESPACE) -> Any:
        return self.get(f"{group_path}/namespaces/{ns}/{plural}/{name}")

    def ensure_namespace(self, ns: str = NAMESPACE) -> None:
        try:
            self.call("POST", "/api/v1/namespaces",
                      {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        except ApiError as error:
            if error.status != 409:
                raise


def wait_for[T](check: Callable[[], T | None], timeout: float = 20.0, what: str = "") -> T:
    """Poll until `check` returns something truthy; fail with the last value seen."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what or check}: last={last!r}")


def condition(ee: dict[str, Any] | None, kind: str) -> dict[str, Any] | None:
    for cond in ((ee or {}).get("status") or {}).get("conditions") or []:
        if cond["type"] == kind:
            result: dict[str, Any] = cond
            return result
    return None


def is_ready(ee: dict[str, Any] | None) -> bool:
    cond = condition(ee, "Ready")
    return bool(cond and cond["status"] == "True")


def is_reconciled(ee: dict[str, Any] | None) -> bool:
    """Every child and queue in place (the editor may still be starting: no kubelet runs)."""
    return all((condition(ee, kind) or {}).get("status") == "True"
               for kind in ("QueuesReady", "RoutingReady")) and (
        ((ee or {}).get("status") or {}).get("phase") in ("Starting", "Ready"))


def spec_for(user: str, **extra: Any) -> dict[str, Any]:
    return {"clientId": "ameliastamps", "projectId": "website", "userId": user,
            "repository": {"url": "https://github.com/ameliastamps/website.git"}, **extra}


def operator_settings(kube_api: KubeAPI, moto: MotoServer, **overrides: Any) -> OperatorSettings:
    values: dict[str, Any] = {
        "kube_api_url": kube_api.url,
        "sqs_endpoint_url": moto.endpoint_url,
        "metrics_port": None,
        "liveness_port": None,
    }
    values.update(overrides)
    return OperatorSettings(**values)


@dataclass
class Harness:
    api: Api
    sqs: Any
    settings: OperatorSettings
    kube_api: KubeAPI
    moto: MotoServer

    def run_operator(self, **overrides: Any) -> KopfRunner:
        """A fresh registry every time: handlers of an earlier run never leak in."""
        settings = self.settings.model_copy(update=overrides) if overrides else self.settings
        registry = kopf.OperatorRegistry()
        register(registry, settings)
        return KopfRunner(["run", "--standalone", "-A"], registry=registry)

    def queue_names(self) -> list[str]:
        urls = self.sqs.list_queues(MaxResults=1000).get("QueueUrls", [])
        return sorted(url.rsplit("/", 1)[-1] for url in urls)


def make_harness(kube_api: KubeAPI, moto: MotoServer) -> Harness:
    """The operator's real handlers (run in process) on this emulator and moto."""
    api = Api(kube_api.url)
    api.ensure_namespace()
    sqs = boto3.client("sqs", endpoint_url=moto.endpoint_url, region_name="us-east-1")
    return Harness(api, sqs, operator_settings(kube_api, moto), kube_api, moto)


@pytest.fixture
def harness(kube_api: KubeAPI, moto: MotoServer) -> Harness:
    return make_harness(kube_api, moto)


@pytest.fixture
def proxied(harness: Harness) -> Iterator[tuple[Harness, SqsProxy]]:
    """The harness with the operator's SQS traffic going through a counting/faulting proxy."""
    proxy = SqsProxy(harness.moto.endpoint_url).start()
    settings = harness.settings.model_copy(update={"sqs_endpoint_url": proxy.url})
    yield Harness(harness.api, harness.sqs, settings, harness.kube_api, harness.moto), proxy
    proxy.stop()


STORAGE_CLASS = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                 "metadata": {"name": "efs-sc"}, "provisioner": "efs.csi.aws.com"}


def ensure_storage_class(api: Api) -> None:
    """The default StorageClass of the chart (efs-sc), once."""
    try:
        api.call("POST", "/apis/storage.k8s.io/v1/storageclasses", STORAGE_CLASS)
    except ApiError as error:
        if error.status != 409:
            raise


@pytest.fixture
def kubelet(harness: Harness, tmp_path: Path) -> Iterator[LocalKubelet]:
    """The devkit kubelet with a pause-like container instead of the editor, and the default
    StorageClass (so workspace PVCs bind as on a cluster with the EFS provisioner)."""
    ensure_storage_class(harness.api)
    node = LocalKubelet(harness.kube_api.url, tmp_path,
                        command=[sys.executable, "-m", "webordinary.devkit.pause"])
    with kubelet_running(node, stop_within=30):
        yield node
