"""A real client against the emulator: kubectl (client-go, the reference client).

webordinary.kube, the product's own client, has its tests in tests/integration/kube.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml

from tests.integration.devkit.conftest import FIXTURES
from webordinary.devkit.kubeapi import KubeAPI

KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"


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


@pytest.mark.skipif(not Path(KUBECTL).exists(), reason="kubectl is not installed")
def test_kubectl_create_list_conflict_status_and_delete(api: KubeAPI) -> None:
    config_map = {"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {"name": "c1", "labels": {"a": "b"}}, "data": {"k": "v"}}
    made = json.loads(kubectl(api, "-n", "shop", "create", "-f", "-", "-o", "json",
                              stdin=json.dumps(config_map)).stdout)
    assert made["metadata"]["resourceVersion"]
    assert kubectl(api, "-n", "shop", "get", "cm", "-l", "a=b", "-o", "name").stdout.split() == [
        "configmap/c1"]
    assert kubectl(api, "-n", "shop", "get", "cm", "-l", "a=c", "-o", "name").stdout == ""
    again = kubectl(api, "-n", "shop", "create", "-f", "-", stdin=json.dumps(config_map),
                    ok=False)
    assert "(AlreadyExists)" in again.stderr
    widget = {"apiVersion": "test.webordinary.dev/v1", "kind": "Widget",
              "metadata": {"name": "w1"}, "spec": {"owner": "bob"}}
    kubectl(api, "-n", "shop", "create", "-f", "-", stdin=json.dumps(widget))
    patched = json.loads(kubectl(
        api, "-n", "shop", "patch", "widget", "w1", "--subresource=status", "--type=merge",
        "-p", '{"status":{"phase":"Ready"},"spec":{"size":7}}', "-o", "json").stdout)
    assert patched["status"] == {"phase": "Ready"}
    assert patched["spec"]["size"] == 3, "the status subresource ignores spec"
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "main", "image": "nginx:1.27"}]}}},
    }
    made = json.loads(kubectl(api, "-n", "shop", "create", "-f", "-", "-o", "json",
                              stdin=json.dumps(deployment)).stdout)
    assert (made["metadata"]["generation"], made["spec"]["replicas"]) == (1, 1)
    scaled = json.loads(kubectl(api, "-n", "shop", "patch", "deploy", "web", "--type=merge",
                                "-p", '{"spec":{"replicas":0}}', "-o", "json").stdout)
    assert scaled["metadata"]["generation"] == 2
    status = json.loads(kubectl(
        api, "-n", "shop", "patch", "deploy", "web", "--subresource=status", "--type=merge",
        "-p", '{"status":{"observedGeneration":2,"replicas":0}}', "-o", "json").stdout)
    assert status["status"]["observedGeneration"] == 2
    assert status["metadata"]["generation"] == 2, "a status write is no new generation"
    kubectl(api, "-n", "shop", "delete", "cm", "c1")
    missing = kubectl(api, "-n", "shop", "get", "cm", "c1", ok=False)
    assert "(NotFound)" in missing.stderr


@pytest.mark.skipif(not Path(KUBECTL).exists(), reason="kubectl is not installed")
def test_kubectl_watch_sees_changes_and_the_server_ends_it(api: KubeAPI) -> None:
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}}, "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "main", "image": "nginx:1.27"}]}}},
    }
    kubectl(api, "-n", "shop", "create", "-f", "-", stdin=json.dumps(deployment))
    # A list, then a watch from its resourceVersion (client-go's reflector); one line per event.
    watcher = subprocess.Popen(
        [KUBECTL, f"--server={api.url}", "--kubeconfig=/dev/null", "-n", "shop", "get",
         "deploy", "-w", "--output-watch-events", "-o", "json", "--request-timeout=30s"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert watcher.stdout is not None
        events = [json.loads(watcher.stdout.readline())]
        kubectl(api, "-n", "shop", "scale", "deploy", "web", "--replicas=1")
        kubectl(api, "-n", "shop", "delete", "deploy", "web")
        events += [json.loads(watcher.stdout.readline()) for _ in range(2)]
    finally:
        watcher.kill()
        watcher.wait(timeout=15)
    assert [(e["type"], e["object"]["spec"]["replicas"]) for e in events] == [
        ("ADDED", 0), ("MODIFIED", 1), ("DELETED", 1)]
    # timeoutSeconds: the server closes the watch (an empty one: nothing left to replay)
    ended = kubectl(api, "get", "--raw",
                    "/apis/apps/v1/namespaces/shop/deployments?watch=1&timeoutSeconds=1")
    assert ended.stdout == ""


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
