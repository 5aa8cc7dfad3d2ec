"""The configuration the chart renders boots the real processes, and their probes answer where the
chart's probes look. Operator and Hermes run as `python -m ...` (the images' entrypoints) with the
chart's environment, against the Kubernetes API emulator (loaded with the chart's CRD) and moto.

Only what cannot be the same outside a cluster is overridden: the API server URL, the AWS
endpoint, 127.0.0.1 instead of 0.0.0.0, free ports instead of the chart's, and local paths for the
routing file and journal (their ConfigMap content is the rendered one).
"""

from __future__ import annotations

import json
import os
import smtplib
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.unit.helm.chart_render import (
    CHART,
    ROOT,
    ci_values,
    config_env,
    fullname,
    merged,
    render,
)
from webordinary.contracts.environment import API_VERSION, KIND, PLURAL
from webordinary.devkit.aws import MotoServer
from webordinary.devkit.eks import PodIdentityApi
from webordinary.devkit.kubeapi import KubeAPI, start_kube_api

RELEASE = "webordinary"
NAMESPACE = "webordinary"
EDITOR_ROLE = "arn:aws:iam::123456789012:role/webordinary-editor"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def http(url: str, method: str = "GET", body: bytes | None = None,
         content_type: str = "application/json") -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, method=method,
                                     headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def wait_http(url: str, process: subprocess.Popen[bytes], timeout: float = 45.0,
              want: int = 200) -> str:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the process exited with {process.returncode}:\n{output(process)}")
        try:
            status, text = http(url)
            if status == want:
                return text
            last = (status, text[:200])
        except OSError as error:
            last = error
        time.sleep(0.2)
    pytest.fail(f"{url} did not answer {want} within {timeout:.0f}s (last: {last!r})")


def probe_url(rendered: Any, component: str, probe: str) -> str:
    """The URL the kubelet would call for this probe, on 127.0.0.1."""
    (container,) = rendered.get("Deployment", fullname(component, RELEASE))["spec"]["template"][
        "spec"]["containers"]
    handler = container[probe]["httpGet"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    port = ports[handler["port"]] if isinstance(handler["port"], str) else handler["port"]
    return f"http://127.0.0.1:{port}{handler['path']}"


@pytest.fixture
def chart_kube_api() -> Iterator[KubeAPI]:
    api = start_kube_api([CHART / "crds"])
    try:
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
        status, text = http(api.url + "/api/v1/namespaces", "POST", json.dumps(namespace).encode())
        assert status in (200, 201), text
        yield api
    finally:
        api.stop()


def launch(module: str, env: dict[str, str], tmp_path: Path) -> subprocess.Popen[bytes]:
    """Output goes to a file: a pipe nobody reads stops the process once 64 KiB are written
    (the chart's kind values log at DEBUG)."""
    base = {key: os.environ[key] for key in ("PATH", "LANG") if key in os.environ}
    base.update(HOME=str(tmp_path), AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                PYTHONPATH=str(ROOT))
    with (tmp_path / f"{module}.log").open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", module], env={**base, **env},
                                   cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    LOGS[process.pid] = tmp_path / f"{module}.log"
    return process


LOGS: dict[int, Path] = {}


def output(process: subprocess.Popen[bytes], tail: int = 4000) -> str:
    return LOGS[process.pid].read_text(errors="replace")[-tail:]


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def dev_values(**ports: int) -> dict[str, Any]:
    values = ci_values()["kind-values.yaml"]
    return {
        **values,
        "operator": {**values["operator"], "healthPort": ports["health"],
                     "metricsPort": ports["operator_metrics"]},
        "hermes": {**values["hermes"], "metricsPort": ports["hermes_metrics"],
                   "smtp": {**values["hermes"]["smtp"], "port": ports["smtp"]}},
    }


def test_the_chart_configured_operator_boots_and_reconciles(
    chart_kube_api: KubeAPI, moto: MotoServer, tmp_path: Path
) -> None:
    eks = PodIdentityApi(clusters=["prod"], roles=[EDITOR_ROLE]).start()
    values = dev_values(health=free_port(), operator_metrics=free_port(),
                        hermes_metrics=free_port(), smtp=free_port())
    # The default AWS identity (one EKS Pod Identity association per environment).
    values = merged(values, {"aws": {"eksClusterName": "prod", "eksEndpointUrl": eks.endpoint_url},
                             "editor": {"awsIdentity": "podIdentity",
                                        "podIdentityRoleArn": EDITOR_ROLE}})
    rendered = render(values, name=RELEASE, namespace=NAMESPACE)
    env = config_env(rendered, "operator", RELEASE)
    env.update(WEBORDINARY_OPERATOR_KUBE_API_URL=chart_kube_api.url,
               WEBORDINARY_OPERATOR_SQS_ENDPOINT_URL=moto.endpoint_url,
               WEBORDINARY_OPERATOR_METRICS_HOST="127.0.0.1")
    assert env["WEBORDINARY_OPERATOR_NAMESPACES"] == NAMESPACE
    process = launch("webordinary.operator", env, tmp_path)
    try:
        wait_http(probe_url(rendered, "operator", "livenessProbe"), process)
        assert probe_url(rendered, "operator", "readinessProbe").endswith("/healthz")
        metrics_port = values["operator"]["metricsPort"]
        environments = f"{chart_kube_api.url}/apis/{API_VERSION}/namespaces/{NAMESPACE}/{PLURAL}"
        body = {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": "chart-boot-john"},
                "spec": {"clientId": "chart", "projectId": "boot", "userId": "john",
                         "suspend": True, "repository": {"url": "https://example.test/s.git"}}}
        status, text = http(environments, "POST", json.dumps(body).encode())
        assert status == 201, text
        deadline = time.monotonic() + 30
        while '"phase":"Sleeping"' not in http(environments + "/chart-boot-john")[1].replace(
                " ", ""):
            assert time.monotonic() < deadline, (
                f"the chart-configured operator never reconciled:\n{output(process)}")
            assert process.poll() is None
            time.sleep(0.2)
        metrics = wait_http(f"http://127.0.0.1:{metrics_port}/metrics", process)
        assert 'webordinary_operator_environments{phase="Sleeping"} 1.0' in metrics
        (association,) = eks.associations()
        assert (association["serviceAccount"], association["roleArn"]) == (
            "chart-boot-john-editor", EDITOR_ROLE)
    finally:
        stop(process)
        eks.stop()


def test_the_chart_configured_hermes_boots_and_listens(
    chart_kube_api: KubeAPI, moto: MotoServer, tmp_path: Path
) -> None:
    values = dev_values(health=free_port(), operator_metrics=free_port(),
                        hermes_metrics=free_port(), smtp=free_port())
    rendered = render(values, name=RELEASE, namespace=NAMESPACE)
    routing = tmp_path / "routing.yaml"
    routing.write_text(rendered.get("ConfigMap", fullname("hermes", RELEASE) + "-routing")["data"][
        "routing.yaml"])
    env = config_env(rendered, "hermes", RELEASE)
    assert env["WEBORDINARY_HERMES_SMTP_ENABLED"] == "true"
    env.update(WEBORDINARY_HERMES_KUBE_API_URL=chart_kube_api.url,
               WEBORDINARY_HERMES_AWS_ENDPOINT_URL=moto.endpoint_url,
               WEBORDINARY_HERMES_METRICS_HOST="127.0.0.1",
               WEBORDINARY_HERMES_SMTP_HOST="127.0.0.1",
               WEBORDINARY_HERMES_ROUTING_FILE=str(routing),
               WEBORDINARY_HERMES_JOURNAL_PATH=str(tmp_path / "journal.jsonl"))
    process = launch("webordinary.hermes", env, tmp_path)
    try:
        wait_http(probe_url(rendered, "hermes", "livenessProbe"), process)
        wait_http(probe_url(rendered, "hermes", "readinessProbe"), process)
        metrics = wait_http(f"http://127.0.0.1:{values['hermes']['metricsPort']}/metrics", process)
        assert "# TYPE" in metrics
        with smtplib.SMTP("127.0.0.1", values["hermes"]["smtp"]["port"], timeout=10) as smtp:
            code, _ = smtp.ehlo()
            assert code == 250
    finally:
        stop(process)


def test_processes_need_nothing_the_chart_does_not_set() -> None:
    """What the boot tests override is exactly the list in the module docstring."""
    rendered = render(dev_values(health=1, operator_metrics=2, hermes_metrics=3, smtp=4),
                      name=RELEASE, namespace=NAMESPACE)
    assert "WEBORDINARY_OPERATOR_KUBE_API_URL" not in config_env(rendered, "operator", RELEASE)
    assert "WEBORDINARY_HERMES_KUBE_API_URL" not in config_env(rendered, "hermes", RELEASE)
    assert render().get("ConfigMap", fullname("operator"))["data"][
        "WEBORDINARY_OPERATOR_METRICS_HOST"] == "0.0.0.0"
