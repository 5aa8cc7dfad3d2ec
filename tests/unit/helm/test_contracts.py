"""The chart and the code cannot drift: settings fields, the CRD, the routing config, the ports."""

from __future__ import annotations

import importlib
import os
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.unit.helm.chart_render import (
    CHART,
    FULL,
    KUBE_VERSIONS,
    ROOT,
    Rendered,
    ci_values,
    config_env,
    fullname,
    render,
)

SETTINGS = {
    "operator": ("webordinary.operator.settings", "OperatorSettings", "WEBORDINARY_OPERATOR_"),
    "hermes": ("webordinary.hermes.settings", "HermesSettings", "WEBORDINARY_HERMES_"),
    "gateway": ("webordinary.gateway.settings", "GatewaySettings", "WEBORDINARY_GATEWAY_"),
}
VALUE_SETS: dict[str, dict[str, Any]] = {"default": {}, "full": FULL, **ci_values()}
CRD_FILE = "editenvironments.webordinary.dev.yaml"


def settings_class(component: str) -> Any:
    module_name, class_name, _ = SETTINGS[component]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError:
        pytest.skip(f"{module_name} does not exist yet: cannot check the chart against it")
    return getattr(module, class_name)


@pytest.mark.parametrize("values_name", sorted(VALUE_SETS))
@pytest.mark.parametrize("component", sorted(SETTINGS))
def test_every_variable_the_chart_sets_is_a_settings_field(
    component: str, values_name: str
) -> None:
    cls = settings_class(component)
    prefix = SETTINGS[component][2]
    assert cls.model_config.get("env_prefix") == prefix
    env = config_env(render(VALUE_SETS[values_name]), component)
    ours = {name for name in env if name.startswith("WEBORDINARY_")}
    assert ours, f"the {component} gets no settings at all"
    fields = {prefix + field.upper() for field in cls.model_fields}
    assert ours - fields == set(), f"{component}: not settings fields: {sorted(ours - fields)}"


@pytest.mark.parametrize("values_name", sorted(VALUE_SETS))
@pytest.mark.parametrize("component", sorted(SETTINGS))
def test_the_settings_class_accepts_what_the_chart_sets(
    component: str, values_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Values parse as the process will parse them: types, JSON lists, comma lists, ranges."""
    cls = settings_class(component)
    prefix = SETTINGS[component][2]
    for name in [n for n in os.environ if n.startswith(prefix)]:
        monkeypatch.delenv(name)
    env = config_env(render(VALUE_SETS[values_name]), component)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = cls()
    rendered = render(VALUE_SETS[values_name])
    (container,) = rendered.get("Deployment", fullname(component))["spec"]["template"]["spec"][
        "containers"]
    metrics = next(p for p in container["ports"] if p["name"] == "metrics")
    assert settings.metrics_port == metrics["containerPort"]
    assert settings.metrics_host == "0.0.0.0"
    if component == "operator":
        assert settings.watch_namespaces() == (
            [] if VALUE_SETS[values_name].get("operator", {}).get("clusterWide") else
            [rendered.get("RoleBinding", fullname("operator"))["metadata"]["namespace"]])
        health = next(p for p in container["ports"] if p["name"] == "health")
        assert settings.liveness_endpoint() == f"http://0.0.0.0:{health['containerPort']}/healthz"


def test_operator_settings_carry_the_editor_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    cls = settings_class("operator")
    rendered = render(FULL)
    for name, value in config_env(rendered, "operator").items():
        monkeypatch.setenv(name, value)
    settings = cls()
    assert settings.editor_image == "webordinary/editor@sha256:" + "a" * 64
    assert settings.editor_run_as_user == 10001, "the editor image's USER"
    assert settings.editor_memory_limit == "3Gi"
    # Editors admit preview traffic only from the pods of the gateway Deployment.
    gateway = rendered.get("Deployment", fullname("gateway"))
    assert settings.gateway_namespace == gateway["metadata"]["namespace"]
    assert settings.gateway_pod_labels.items() <= (
        gateway["spec"]["template"]["metadata"]["labels"].items())
    assert settings.role_arn("tenants", "a-b-c") == (
        "arn:aws:iam::123456789012:role/webordinary-editor-a-b-c")
    assert settings.anthropic_secret_name == "anthropic-api-key"
    assert settings.watch_namespaces() == [], "clusterWide watches every namespace"
    namespaced = config_env(render({"environments": {"namespace": "tenants"}}), "operator")
    assert namespaced["WEBORDINARY_OPERATOR_NAMESPACES"] == "tenants"


def test_hermes_settings_point_at_the_mounted_routing_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cls = settings_class("hermes")
    rendered = render(FULL)
    for name, value in config_env(rendered, "hermes").items():
        monkeypatch.setenv(name, value)
    settings = cls()
    (container,) = rendered.get("Deployment", fullname("hermes"))["spec"]["template"]["spec"][
        "containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert str(settings.routing_file) == f"{mounts['routing']}/routing.yaml"
    assert str(settings.journal_path).startswith(mounts["journal"] + "/")
    assert settings.namespace == "tenants"
    assert settings.smtp_enabled is True
    assert settings.smtp_host == "0.0.0.0", "reachable through the Service"
    assert settings.smtp_port == next(
        p["containerPort"] for p in container["ports"] if p["name"] == "smtp")
    assert settings.smtp_outbound_host == "mail.internal"


def routing_text(rendered: Rendered) -> str:
    return str(rendered.get("ConfigMap", fullname("hermes") + "-routing")["data"]["routing.yaml"])


def test_routing_values_become_a_routing_file_hermes_loads() -> None:
    try:
        from webordinary.hermes.routing import load_routing
    except ModuleNotFoundError:
        pytest.skip("webordinary.hermes.routing does not exist yet")
    routing = ci_values()["kind-values.yaml"]["hermes"]["routing"]
    config = load_routing(routing_text(render({"hermes": {"routing": routing}})))
    assert [s.address for s in config.senders] == ["john@ameliastamps.test"]
    assert config.projects[0].repository.url.endswith("example-site.git")
    assert load_routing(routing_text(render())) == load_routing("")


def test_routing_example_is_valid_chart_values() -> None:
    example = ROOT / "hermes" / "routing.example.yaml"
    if not example.is_file():
        pytest.skip("hermes/routing.example.yaml does not exist yet")
    from webordinary.hermes.routing import load_routing

    routing = yaml.safe_load(example.read_text())
    rendered = render({"hermes": {"routing": routing}})
    assert load_routing(routing_text(rendered)) == load_routing(example.read_text())


def test_chart_crd_equals_the_generated_crd() -> None:
    """Helm packages no symlinks: crds/ is copied into the chart and must stay identical."""
    source = ROOT / "crds" / CRD_FILE
    if not source.is_file():
        pytest.skip(f"crds/{CRD_FILE} has not been generated yet")
    copy = CHART / "crds" / CRD_FILE
    assert copy.read_bytes() == source.read_bytes(), (
        f"helm/webordinary/crds/{CRD_FILE} differs from crds/{CRD_FILE}: "
        f"cp crds/{CRD_FILE} helm/webordinary/crds/"
    )
    assert sorted(p.name for p in (CHART / "crds").iterdir()) == [CRD_FILE]


def test_chart_crd_is_what_helm_installs_and_what_rbac_names() -> None:
    import helm_python

    (crd_entry,) = helm_python.Chart.load(CHART).crds
    crd = yaml.safe_load(crd_entry["data"])
    assert crd["kind"] == "CustomResourceDefinition"
    group, plural = crd["spec"]["group"], crd["spec"]["names"]["plural"]
    assert crd["metadata"]["name"] == f"{plural}.{group}"
    versions = [v for v in crd["spec"]["versions"] if v["served"]]
    assert all("status" in v.get("subresources", {}) for v in versions)
    for kube_version in KUBE_VERSIONS:
        kubernetes_validate.validate(crd, kube_version, strict=True)
    rules = render().get("ClusterRole", fullname("operator"))["rules"]
    named = {(g, r) for rule in rules for g in rule["apiGroups"] for r in rule["resources"]}
    assert {(group, plural), (group, f"{plural}/status"), (group, f"{plural}/finalizers")} <= named


def test_editor_pod_monitor_selects_the_pods_the_operator_builds() -> None:
    from webordinary.contracts.editor_env import METRICS_PORT
    from webordinary.contracts.environment import EditEnvironmentSpec, QueueUrls
    from webordinary.operator import builders
    from webordinary.operator.settings import OperatorSettings

    spec = EditEnvironmentSpec.model_validate({
        "clientId": "ameliastamps", "projectId": "website", "userId": "john",
        "repository": {"url": "https://example.test/site.git"}})
    queues = QueueUrls(input="http://q/i", output="http://q/o", dlq="http://q/d")
    owner = builders.Owner("tenants", "ameliastamps-website-john", "uid-1")
    editor = builders.deployment(owner, spec, queues, 1, OperatorSettings())
    pod_labels = editor["spec"]["template"]["metadata"]["labels"]
    (monitor,) = render(FULL).all("PodMonitor")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    ports = {p["name"]: p["containerPort"] for c in editor["spec"]["template"]["spec"]["containers"]
             for p in c["ports"]}
    endpoints = [e["port"] for e in monitor["spec"]["podMetricsEndpoints"]]
    assert ports[endpoints[0]] == METRICS_PORT
    # Every container's metrics: the editor, the preview supervisor, the credential proxy.
    assert set(endpoints) == {"metrics", "preview-metrics", "creds-metrics"}
    assert all(name in ports for name in endpoints)


def test_storage_class_matches_the_crd_default() -> None:
    crd = yaml.safe_load((CHART / "crds" / CRD_FILE).read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    default = spec["properties"]["storage"]["properties"]["storageClassName"]["default"]
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["storageClass"]["name"] == default
    created = render({"storageClass": {"create": True, "fileSystemId": "fs-01234567"}})
    assert created.has("StorageClass", default)
    assert "WARNING" not in created.notes
    renamed = render({"storageClass": {"create": True, "fileSystemId": "fs-01234567",
                                       "name": "efs-other"}})
    assert f'default to "{default}"' in renamed.notes
    assert f'StorageClass "{default}"' in render().notes
