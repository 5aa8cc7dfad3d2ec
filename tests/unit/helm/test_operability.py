"""What an SRE operates: the kind values run a whole editor (RWO volume on local-path, the
Secret, a reachable Messages API stand-in), `helm test`, alerts on metrics that exist,
editors' placement through the operator, JSON logs, operator HA with kopf peering."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from tests.unit.helm.chart_render import (
    FULL,
    KUBE_VERSIONS,
    ROOT,
    Rendered,
    ci_values,
    config_env,
    fullname,
    render,
)
from webordinary.contracts.editor_env import SECRET_ENV_ANTHROPIC_API_KEY
from webordinary.contracts.environment import EditEnvironmentSpec, QueueUrls
from webordinary.operator import builders
from webordinary.operator.settings import OperatorSettings

KIND = ci_values()["kind-values.yaml"]
KIND_RELEASE = "webordinary"  # the Tiltfile's release and namespace
SPEC = EditEnvironmentSpec.model_validate({
    "clientId": "ameliastamps", "projectId": "website", "userId": "john",
    "repository": {"url": "https://github.com/webordinary/example-site.git"}})
QUEUES = QueueUrls(input="http://q/i", output="http://q/o", dlq="http://q/d")


def operator_settings(rendered: Rendered, monkeypatch: pytest.MonkeyPatch,
                      release: str = "wo") -> OperatorSettings:
    """The settings the operator process builds from the chart's environment."""
    for name in [n for n in os.environ if n.startswith("WEBORDINARY_OPERATOR_")]:
        monkeypatch.delenv(name)
    for name, value in config_env(rendered, "operator", release).items():
        monkeypatch.setenv(name, value)
    return OperatorSettings()


def editor_children(settings: OperatorSettings, namespace: str) -> dict[str, dict[str, Any]]:
    owner = builders.Owner(namespace, "ameliastamps-website-john", "uid-1")
    return {kind.kind: manifest for kind, _, manifest in
            builders.children(owner, SPEC, QUEUES, 1, settings) if manifest is not None}


# -- kind: a runnable editor ---------------------------------------------------------------

def test_kind_values_give_a_runnable_editor(monkeypatch: pytest.MonkeyPatch) -> None:
    rendered = render(KIND, name=KIND_RELEASE, namespace=KIND_RELEASE)
    settings = operator_settings(rendered, monkeypatch, KIND_RELEASE)
    children = editor_children(settings, KIND_RELEASE)
    # the volume binds on kind: local-path provisions ReadWriteOnce only, on first consumer
    pvc = children["PersistentVolumeClaim"]
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    storage_class = rendered.get("StorageClass", pvc["spec"]["storageClassName"])
    assert storage_class["provisioner"] == "rancher.io/local-path"
    assert storage_class["volumeBindingMode"] == "WaitForFirstConsumer"
    # one pod per volume: at most one replica, the old pod gone before a new one starts
    deployment = children["Deployment"]
    assert deployment["spec"]["replicas"] <= 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]["spec"]
    claim = next(v for v in pod["volumes"] if "persistentVolumeClaim" in v)
    assert claim["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    # the Secret the editor reads exists where the editor runs, with the key it names
    env = {e["name"]: e for c in pod["containers"] for e in c.get("env", [])}
    ref = env[SECRET_ENV_ANTHROPIC_API_KEY]["valueFrom"]["secretKeyRef"]
    secret = rendered.get("Secret", ref["name"])
    assert secret["metadata"]["namespace"] == KIND_RELEASE
    assert ref["key"] in secret["stringData"]
    # the stand-in: a Service selecting the stand-in's pods on the port the URL names
    url = env["WEBORDINARY_CREDENTIALS_API_BASE_URL"]["value"]  # the credential proxy
    match = re.fullmatch(r"http://([a-z0-9-]+):(\d+)", url)
    assert match, url
    service = rendered.get("Service", match[1])
    assert service["metadata"]["namespace"] == KIND_RELEASE
    (port,) = service["spec"]["ports"]
    assert port["port"] == int(match[2])
    stand_in = rendered.get("Deployment", match[1])
    labels = stand_in["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    (container,) = stand_in["spec"]["template"]["spec"]["containers"]
    assert port["targetPort"] in [p["name"] for p in container["ports"]]
    # ... and the editors' NetworkPolicy lets them reach it
    policy = children["NetworkPolicy"]
    assert any(
        any(peer.get("podSelector", {}).get("matchLabels", {}).items() <= labels.items()
            and peer.get("podSelector") for peer in rule.get("to", []))
        and any(p["port"] == int(container["ports"][0]["containerPort"])
                for p in rule.get("ports", []))
        for rule in policy["spec"]["egress"])
    for manifest in children.values():
        for version in KUBE_VERSIONS:
            kubernetes_validate.validate(manifest, version, strict=True)


def test_the_stand_in_container_answers_the_messages_api() -> None:
    """The stand-in Deployment's command, run here: a real Messages API request."""
    rendered = render(KIND, name=KIND_RELEASE, namespace=KIND_RELEASE)
    (container,) = rendered.get("Deployment", f"{KIND_RELEASE}-messages-api")[
        "spec"]["template"]["spec"]["containers"]
    dockerfile = (ROOT / "images" / "Dockerfile").read_text()
    entrypoint = json.loads(dockerfile.split("FROM runtime AS devkit", 1)[1].split(
        "ENTRYPOINT ", 1)[1].splitlines()[0])
    assert entrypoint[:2] == ["python", "-m"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["WEBORDINARY_MESSAGES_API_HOST"] == "0.0.0.0"
    port = _free_port()
    args = [str(port) if a == str(container["ports"][0]["containerPort"]) else a
            for a in container["args"]]
    process = subprocess.Popen([sys.executable, *entrypoint[1:], *args],
                               env={**os.environ, "WEBORDINARY_MESSAGES_API_HOST": "127.0.0.1"},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        body = json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": True,
                           "messages": [{"role": "user", "content": "hello"}]}).encode()
        deadline = time.monotonic() + 20
        while True:
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/v1/messages?beta=true", data=body,
                    headers={"content-type": "application/json", "x-api-key": "local-stand-in"})
                with urllib.request.urlopen(request, timeout=10) as response:
                    text = response.read().decode()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert "message_start" in text
        assert "message_stop" in text
    finally:
        process.terminate()
        process.wait(timeout=10)


def _free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- helm test -----------------------------------------------------------------------------

def test_helm_test_checks_crd_operator_and_hermes() -> None:
    rendered = render()
    pod = rendered.get("Pod", fullname("test"))
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert pod["spec"]["restartPolicy"] == "Never"
    (container,) = pod["spec"]["containers"]
    script = container["args"][0]
    compile(script, "helm-test", "exec")
    assert "customresourcedefinitions/editenvironments.webordinary.dev" in script
    urls = re.findall(r"http://([a-z0-9-]+):(\d+)/healthz", script)
    assert len(urls) == 2
    for host, port in urls:
        service = rendered.get("Service", host)
        assert int(port) in [p["port"] for p in service["spec"]["ports"]], host
    for component, port_name in (("operator", "health"), ("hermes", "metrics")):
        (server,) = rendered.get("Deployment", fullname(component))["spec"]["template"][
            "spec"]["containers"]
        service = rendered.get("Service", fullname(component))
        assert port_name in [p["targetPort"] for p in service["spec"]["ports"]]
        probe = server["livenessProbe"]["httpGet"]
        assert probe == {"path": "/healthz", "port": port_name}
    role = rendered.get("ClusterRole", fullname("test"))
    assert role["rules"] == [{"apiGroups": ["apiextensions.k8s.io"],
                              "resources": ["customresourcedefinitions"],
                              "resourceNames": ["editenvironments.webordinary.dev"],
                              "verbs": ["get"]}]
    ctx = container["securityContext"]
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["capabilities"]["drop"] == ["ALL"]
    for obj in rendered.objects:
        if obj["metadata"].get("annotations", {}).get("helm.sh/hook") == "test":
            for version in KUBE_VERSIONS:
                kubernetes_validate.validate(obj, version, strict=True)
    assert not render({"tests": {"enabled": False}}).has("Pod", fullname("test"))


# -- alerts --------------------------------------------------------------------------------

def _exported_metrics() -> set[str]:
    """Every sample name the operator's and Hermes' registries expose."""
    from webordinary.hermes.metrics import Metrics as HermesMetrics
    from webordinary.operator.metrics import Metrics

    names: set[str] = set()
    for registry in (Metrics().registry, HermesMetrics().registry):
        for family in registry.collect():
            names.update(sample.name for sample in family.samples)
            if family.type == "histogram":
                names.add(family.name + "_bucket")
            if family.type == "counter":
                names.add(family.name + "_total")
    return names


def test_alerts_are_opt_in_and_use_metrics_that_exist() -> None:
    assert not render().all("PrometheusRule")
    (rule,) = render({"metrics": {"prometheusRule": {"enabled": True}}}).all("PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    alerts = {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}
    assert {"WebordinaryReconcileErrors", "WebordinaryEnvironmentsDegraded",
            "WebordinaryHermesRejects", "WebordinaryHermesErrors", "WebordinaryDeadLetters",
            "WebordinarySlowWakes"} <= set(alerts)
    exported = _exported_metrics()
    for name, alert in alerts.items():
        assert set(alert) == {"alert", "expr", "for", "labels", "annotations"}, name
        assert alert["labels"]["severity"] in ("warning", "critical")
        assert {"summary", "description"} <= set(alert["annotations"])
        assert re.fullmatch(r"\d+[smh]", alert["for"]), name
        assert alert["expr"].count("(") == alert["expr"].count(")"), name
        ours = set(re.findall(r"\b((?:webordinary|hermes)_[a-z_]+)", alert["expr"]))
        assert ours <= exported, f"{name}: {ours - exported} is not exported"
    assert "aws_sqs_approximate_number_of_messages_visible" in alerts[
        "WebordinaryDeadLetters"]["expr"]


# -- placement, logs, HA -------------------------------------------------------------------

def test_editor_placement_reaches_every_editor_pod(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = operator_settings(render(FULL), monkeypatch)
    pod = editor_children(settings, "tenants")["Deployment"]["spec"]["template"]["spec"]
    placement = FULL["editor"]["placement"]
    assert pod["nodeSelector"] == placement["nodeSelector"]
    assert pod["tolerations"] == placement["tolerations"]
    assert pod["priorityClassName"] == "editors"
    (spread,) = pod["topologySpreadConstraints"]
    assert spread["topologyKey"] == "topology.kubernetes.io/zone"
    assert spread["labelSelector"] == {"matchLabels": {
        "app.kubernetes.io/name": builders.APP_NAME, "app.kubernetes.io/component": "editor"}}
    default = editor_children(operator_settings(render(), monkeypatch), "tenants")
    assert "nodeSelector" not in default["Deployment"]["spec"]["template"]["spec"]


def test_json_logs_are_selectable() -> None:
    for component in ("operator", "hermes"):
        prefix = f"WEBORDINARY_{component.upper()}_"
        assert config_env(render(), component)[prefix + "LOG_FORMAT"] == "text"
        assert config_env(render({component: {"logFormat": "json"}}), component)[
            prefix + "LOG_FORMAT"] == "json"


def stderr_of(script: str) -> str:
    """What a fresh interpreter running `script` writes to stderr (where the logs go)."""
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True, timeout=30).stderr


def test_json_formatter_writes_one_object_per_line() -> None:
    script = ("import logging; from webordinary.contracts import logformat; "
              "logformat.configure('INFO', 'json'); "
              "logging.getLogger('x').info('hello %s', 'world', extra={'environment': 'e1'})\n"
              "try:\n    1/0\nexcept ZeroDivisionError:\n"
              "    logging.getLogger('x').exception('boom')")
    out = stderr_of(script).splitlines()
    first, second = (json.loads(line) for line in out)
    assert first["message"] == "hello world"
    assert first["severity"] == "info"  # kopf's JSON keys: message, timestamp, severity
    assert first["environment"] == "e1"
    assert first["timestamp"].endswith("+00:00")
    assert "ZeroDivisionError" in second["exception"]


@pytest.mark.parametrize("cluster_wide", [False, True])
def test_operator_ha_renders_peering(cluster_wide: bool) -> None:
    rendered = render({"operator": {"replicas": 2, "clusterWide": cluster_wide}})
    deployment = rendered.get("Deployment", fullname("operator"))
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 1,
                                                              "maxSurge": 0}
    env = config_env(rendered, "operator")
    assert env["WEBORDINARY_OPERATOR_PEERING_NAME"] == "webordinary"
    assert env["WEBORDINARY_OPERATOR_PEERING_LIFETIME_SECONDS"] == "30"
    kind = "ClusterKopfPeering" if cluster_wide else "KopfPeering"
    peering = rendered.get(kind, "webordinary")
    assert peering["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    crd = rendered.get("CustomResourceDefinition", f"{kind.lower()}s.kopf.dev")
    assert crd["spec"]["names"]["kind"] == kind
    rules = rendered.get("ClusterRole", fullname("operator"))["rules"]
    assert {"apiGroups": ["kopf.dev"], "resources": [f"{kind.lower()}s"],
            "verbs": ["get", "list", "watch", "patch"]} in rules
    assert not render().all("CustomResourceDefinition")


def test_dockerfile_and_tiltfile_build_the_stand_in() -> None:
    dockerfile = (ROOT / "images" / "Dockerfile").read_text()
    assert "--package webordinary-devkit" in dockerfile
    assert "'webordinary/devkit'" in Path(ROOT / "Tiltfile").read_text()


def test_debug_logs_leave_the_aws_sdk_at_info() -> None:
    """botocore at DEBUG prints every request's body (queue messages carry customers' mail)."""
    script = ("import logging; from webordinary.contracts import logformat; "
              "logformat.configure('DEBUG'); "
              "logging.getLogger('webordinary.x').debug('mine'); "
              "logging.getLogger('botocore.endpoint').debug('Sending http request: body'); "
              "logging.getLogger('botocore.credentials').info('Found credentials')")
    err = stderr_of(script)
    assert "mine" in err
    assert "Found credentials" in err
    assert "Sending http request" not in err
