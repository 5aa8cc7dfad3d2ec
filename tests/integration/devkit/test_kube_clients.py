"""Real clients against the emulator: kubectl, the kubernetes and kubernetes_asyncio clients."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import kubernetes_asyncio
import pytest
import requests
import yaml

from webordinary.devkit.kubeapi import KubeAPI, start_kube_api

FIXTURES = Path(__file__).parent / "fixtures"
KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"


@pytest.fixture
def api() -> Iterator[KubeAPI]:
    api = start_kube_api([FIXTURES])
    api.create_namespaces("shop")
    yield api
    api.stop()


def kubectl(api: KubeAPI, *args: str, stdin: str | None = None, ok: bool = True
            ) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [KUBECTL, f"--server={api.url}", "--kubeconfig=/dev/null", *args],
        capture_output=True, text=True, input=stdin, timeout=60, check=False)
    if ok:
        assert result.returncode == 0, result.stderr
    return result


def manifests() -> str:
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "main", "image": "nginx:1.27",
                                     "env": [{"name": "A", "value": "1"}]}]}}},
    }
    widget = {"apiVersion": "test.webordinary.dev/v1", "kind": "Widget",
              "metadata": {"name": "w1", "namespace": "shop"}, "spec": {"owner": "bob"}}
    return yaml.safe_dump_all([deployment, widget])


@pytest.mark.skipif(not Path(KUBECTL).exists(), reason="kubectl is not installed")
def test_kubectl_apply_get_patch_delete(api: KubeAPI, tmp_path: Path) -> None:
    path = tmp_path / "all.yaml"
    path.write_text(manifests())
    out = kubectl(api, "apply", "-f", str(path)).stdout
    assert "deployment.apps/web created" in out
    assert "widget.test.webordinary.dev/w1 created" in out
    assert "unchanged" in kubectl(api, "apply", "-f", str(path)).stdout
    table = kubectl(api, "get", "widgets", "-n", "shop").stdout
    assert table.split()[:3] == ["NAME", "PHASE", "AGE"]
    obj = yaml.safe_load(kubectl(api, "get", "wdg", "w1", "-n", "shop", "-o", "yaml").stdout)
    assert obj["spec"]["size"] == 3
    kubectl(api, "patch", "widget", "w1", "-n", "shop", "--type=merge",
            "-p", '{"spec":{"size":5}}')
    kubectl(api, "patch", "deployment", "web", "-n", "shop",
            "-p", '{"spec":{"template":{"spec":{"containers":[{"name":"main",'
                  '"env":[{"name":"B","value":"2"}]}]}}}}')
    deployment = json.loads(kubectl(api, "get", "deploy", "web", "-n", "shop",
                                    "-o", "json").stdout)
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    explained = kubectl(api, "explain", "deployment.spec.replicas").stdout
    assert "FIELD: replicas <integer>" in explained
    assert "owner" in kubectl(api, "explain", "widget.spec").stdout
    described = kubectl(api, "describe", "widget", "w1", "-n", "shop").stdout
    assert "Size:   5" in described
    immutable = kubectl(api, "patch", "widget", "w1", "-n", "shop", "--type=merge",
                        "-p", '{"spec":{"owner":"eve"}}', ok=False)
    assert immutable.returncode != 0
    assert "owner is immutable" in immutable.stderr
    kubectl(api, "delete", "-f", str(path))
    assert "No resources found" in kubectl(api, "get", "widgets", "-A").stderr


@pytest.mark.skipif(not Path(KUBECTL).exists(), reason="kubectl is not installed")
def test_kubectl_apply_of_crds_registers_resources(api: KubeAPI) -> None:
    crd = yaml.safe_load((FIXTURES / "widgets.yaml").read_text())
    crd["metadata"]["name"] = "gizmos.test.webordinary.dev"
    crd["spec"]["names"] = {"plural": "gizmos", "singular": "gizmo", "kind": "Gizmo"}
    kubectl(api, "apply", "-f", "-", stdin=yaml.safe_dump(crd))
    gizmo = {"apiVersion": "test.webordinary.dev/v1", "kind": "Gizmo",
             "metadata": {"name": "g", "namespace": "default"}, "spec": {"owner": "x"}}
    kubectl(api, "apply", "-f", "-", stdin=yaml.safe_dump(gizmo))
    assert "g " in kubectl(api, "get", "gizmos").stdout
    invalid = dict(gizmo, spec={"owner": "x", "size": 99})
    rejected = kubectl(api, "apply", "-f", "-", stdin=yaml.safe_dump(invalid), ok=False)
    assert "spec.size" in rejected.stderr


@pytest.mark.skipif(not Path(KUBECTL).exists(), reason="kubectl is not installed")
def test_kubectl_create_generators_send_protobuf(api: KubeAPI) -> None:
    kubectl(api, "create", "namespace", "webordinary")
    kubectl(api, "-n", "webordinary", "create", "secret", "generic", "key",
            "--from-literal=api-key=sk-test")
    kubectl(api, "-n", "webordinary", "create", "configmap", "cfg", "--from-literal=a=b")
    secret = json.loads(kubectl(api, "-n", "webordinary", "get", "secret", "key",
                                "-o", "json").stdout)
    assert secret["data"] == {"api-key": "c2stdGVzdA=="}
    assert secret["type"] == "Opaque"
    config = json.loads(kubectl(api, "-n", "webordinary", "get", "cm", "cfg", "-o", "json").stdout)
    assert config["data"] == {"a": "b"}
    refused = kubectl(api, "-n", "webordinary", "create", "deployment", "web", "--image=x:1",
                      ok=False)
    assert "send JSON" in refused.stderr


def test_kubernetes_client(api: KubeAPI) -> None:
    config = kubernetes.client.Configuration(host=api.url)
    with kubernetes.client.ApiClient(config) as client:
        core = kubernetes.client.CoreV1Api(client)
        body = kubernetes.client.V1ConfigMap(
            metadata=kubernetes.client.V1ObjectMeta(name="c1", labels={"a": "b"}),
            data={"k": "v"})
        made = core.create_namespaced_config_map("shop", body)
        assert made.metadata.resource_version
        listed = core.list_namespaced_config_map("shop", label_selector="a=b")
        assert [c.metadata.name for c in listed.items] == ["c1"]
        with pytest.raises(kubernetes.client.ApiException) as conflict:
            core.create_namespaced_config_map("shop", body)
        assert conflict.value.status == 409
        custom = kubernetes.client.CustomObjectsApi(client)
        widget: dict[str, Any] = {"apiVersion": "test.webordinary.dev/v1", "kind": "Widget",
                                  "metadata": {"name": "w1"}, "spec": {"owner": "bob"}}
        custom.create_namespaced_custom_object("test.webordinary.dev", "v1", "shop",
                                               "widgets", widget)
        patched = custom.patch_namespaced_custom_object_status(
            "test.webordinary.dev", "v1", "shop", "widgets", "w1",
            {"status": {"phase": "Ready"}})
        assert patched["status"] == {"phase": "Ready"}
        core.delete_namespaced_config_map("c1", "shop")
        with pytest.raises(kubernetes.client.ApiException) as missing:
            core.read_namespaced_config_map("c1", "shop")
        assert missing.value.status == 404
        watch = kubernetes.watch.Watch()
        events = list(watch.stream(core.list_namespaced_config_map, "shop",
                                   timeout_seconds=1))
        assert [e["type"] for e in events] == []


async def test_kubernetes_asyncio_client(api: KubeAPI) -> None:
    config = kubernetes_asyncio.client.Configuration(host=api.url)
    async with kubernetes_asyncio.client.ApiClient(config) as client:
        apps = kubernetes_asyncio.client.AppsV1Api(client)
        deployment = {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "main", "image": "nginx:1.27"}]}}},
        }
        made = await apps.create_namespaced_deployment("shop", deployment)
        assert made.metadata.generation == 1
        assert made.spec.replicas == 1
        scaled = await apps.patch_namespaced_deployment("web", "shop", {"spec": {"replicas": 0}})
        assert scaled.metadata.generation == 2
        status = await apps.patch_namespaced_deployment_status(
            "web", "shop", {"status": {"observedGeneration": 2, "replicas": 0}})
        assert status.status.observed_generation == 2
        watch = kubernetes_asyncio.watch.Watch()
        seen = []
        async with watch.stream(apps.list_namespaced_deployment, "shop",
                                timeout_seconds=1) as stream:
            async for event in stream:
                seen.append((event["type"], event["object"].metadata.name))
        assert seen == [("ADDED", "web")]


def test_command_line_server(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "webordinary.devkit.kubeapi", "--port", "0",
         "--crds", str(FIXTURES), "--crds", str(tmp_path / "missing")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("Kubernetes API emulator at http://127.0.0.1:"), line
        url = line.split(" at ", 1)[1].strip()
        resources = requests.get(f"{url}/apis/test.webordinary.dev/v1", timeout=5).json()
        assert resources["resources"][0]["name"] == "widgets"
        made = requests.post(f"{url}/api/v1/namespaces/default/configmaps",
                             data="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: y}\n",
                             headers={"Content-Type": "application/yaml"}, timeout=5)
        assert made.status_code == 201, made.text
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
