"""The chart renders, lints clean, and every built-in object passes the official schemas."""

from __future__ import annotations

import re
from typing import Any

import helm_python
import kubernetes_validate
import pytest
import yaml

from tests.unit.helm.chart_render import (
    CHART,
    FULL,
    KUBE_VERSIONS,
    REQUIRED,
    ROOT,
    Rendered,
    ci_values,
    config_env,
    fullname,
    merged,
    render,
)

VALUE_SETS: dict[str, dict[str, Any]] = {"default": {}, "full": FULL, **ci_values()}
STANDARD_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
    "helm.sh/chart",
)
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# Kinds the official schemas do not cover; checked by their own tests.
CUSTOM_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule", "KopfPeering",
                "ClusterKopfPeering"}


@pytest.fixture(scope="module", params=sorted(VALUE_SETS))
def rendered(request: pytest.FixtureRequest) -> Rendered:
    return render(VALUE_SETS[request.param])


def test_ci_values_exist() -> None:
    assert "kind-values.yaml" in ci_values(), "the Tiltfile's kind values must stay under ci/"


def test_lint_strict_is_clean() -> None:
    report = helm_python.lint(CHART, REQUIRED, strict=True)
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize("name", sorted(ci_values()))
def test_lint_strict_is_clean_with_ci_values(name: str) -> None:
    report = helm_python.lint(CHART, ci_values()[name], strict=True)
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_every_builtin_object_passes_the_official_schema(value_set: str, kube_version: str) -> None:
    """Rendered for that version, as `helm install` against such a cluster would."""
    rendered = render(VALUE_SETS[value_set], kube_version=kube_version)
    for obj in rendered.objects:
        if obj["kind"] in CUSTOM_KINDS:
            continue
        try:
            kubernetes_validate.validate(obj, kube_version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = f"{obj['kind']}/{obj['metadata']['name']} at {list(exc.path)}"
            pytest.fail(f"{where}: {exc.message}")


def test_every_object_has_the_standard_labels(rendered: Rendered) -> None:
    for obj in rendered.objects:
        labels = obj["metadata"].get("labels", {})
        missing = [key for key in STANDARD_LABELS if key not in labels]
        assert not missing, f"{obj['kind']}/{obj['metadata']['name']} lacks {missing}"
        assert labels["app.kubernetes.io/part-of"] == "webordinary"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["helm.sh/chart"] == "webordinary-0.1.0"


def test_names_and_namespaces(rendered: Rendered) -> None:
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding", "StorageClass",
                      "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
                      "CustomResourceDefinition", "ClusterKopfPeering"}
    for obj in rendered.objects:
        name = obj["metadata"]["name"]
        assert DNS_SUBDOMAIN.match(name), name
        assert len(name) <= 63, name
        if obj["kind"] in cluster_scoped:
            assert "namespace" not in obj["metadata"], name
        else:
            assert obj["metadata"].get("namespace"), f"{obj['kind']}/{name} has no namespace"
    keys = [(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])
            for o in rendered.objects]
    assert len(keys) == len(set(keys)), "two objects share kind/namespace/name"


def test_default_install_has_what_an_sre_needs() -> None:
    rendered = render()
    for kind, name in [
        ("Deployment", fullname("operator")),
        ("Deployment", fullname("hermes")),
        ("ServiceAccount", fullname("operator")),
        ("ServiceAccount", fullname("hermes")),
        ("ClusterRole", fullname("operator")),
        ("ClusterRole", fullname("operator") + "-framework"),
        ("Role", fullname("hermes")),
        ("Service", fullname("operator")),
        ("Service", fullname("hermes")),
        ("ConfigMap", fullname("hermes") + "-routing"),
        ("NetworkPolicy", fullname("operator")),
        ("NetworkPolicy", fullname("hermes")),
        ("Deployment", fullname("gateway")),
        ("Service", fullname("gateway")),
        ("Ingress", fullname("gateway")),
        ("PodDisruptionBudget", fullname("gateway")),
        ("NetworkPolicy", fullname("gateway")),
    ]:
        assert rendered.has(kind, name), f"missing {kind}/{name}"
    kinds = {o["kind"] for o in rendered.objects if o["metadata"]["name"] != fullname("gateway")}
    assert not kinds & {"StorageClass", "ServiceMonitor", "PodDisruptionBudget",
                        "PersistentVolumeClaim"}, "optional objects must be off by default"
    assert not any("moto" in o["metadata"]["name"] or "mailpit" in o["metadata"]["name"]
                   for o in rendered.objects), "dev services must be off by default"
    assert "kubectl get editenvironments" in rendered.notes
    assert "docs/operations.md" in rendered.notes


def test_optional_objects_appear_when_enabled() -> None:
    rendered = render(FULL)
    storage_class = rendered.get("StorageClass", "efs-sc")
    assert storage_class["provisioner"] == "efs.csi.aws.com"
    assert storage_class["parameters"]["fileSystemId"] == "fs-0123456789abcdef0"
    assert storage_class["parameters"]["uid"] == "10001"
    pdb = rendered.get("PodDisruptionBudget", fullname("operator"))
    pod_labels = rendered.get("Deployment", fullname("operator"))["spec"]["template"]["metadata"][
        "labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    monitors = rendered.all("ServiceMonitor")
    assert {m["metadata"]["name"] for m in monitors} == {
        fullname("operator"), fullname("hermes"), fullname("gateway")}
    for monitor in monitors:
        service = rendered.get("Service", monitor["metadata"]["name"])
        assert monitor["spec"]["selector"]["matchLabels"].items() <= (
            service["metadata"]["labels"].items())
        assert monitor["spec"]["endpoints"][0]["port"] in {p["name"] for p in
                                                           service["spec"]["ports"]}
    (editors,) = rendered.all("PodMonitor")
    assert editors["metadata"]["namespace"] == "tenants", "where the editors run"
    assert editors["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    pvc = rendered.get("PersistentVolumeClaim", fullname("hermes") + "-journal")
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_irsa_annotations() -> None:
    rendered = render(FULL)
    sa = rendered.get("ServiceAccount", fullname("operator"))
    assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == (
        "arn:aws:iam::123456789012:role/webordinary-operator")
    assert "annotations" not in render().get("ServiceAccount", fullname("hermes"))["metadata"]


def test_image_references() -> None:
    defaults = render()
    operator = defaults.get("Deployment", fullname("operator"))
    assert operator["spec"]["template"]["spec"]["containers"][0]["image"] == (
        "webordinary/operator:0.1.0")
    pinned = render({"image": {"registry": "123456789012.dkr.ecr.us-east-1.amazonaws.com",
                               "tag": "1.2.3"},
                     "hermes": {"image": {"digest": "sha256:" + "b" * 64}}})
    hermes = pinned.get("Deployment", fullname("hermes"))
    assert hermes["spec"]["template"]["spec"]["containers"][0]["image"] == (
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/webordinary/hermes@sha256:" + "b" * 64)
    operator = pinned.get("Deployment", fullname("operator"))
    assert operator["spec"]["template"]["spec"]["containers"][0]["image"] == (
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/webordinary/operator:1.2.3")


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"securityContext": {"runAsUser": 0}}, "/securityContext/runAsUser"),
        ({"storageClass": {"create": True}}, "/storageClass/fileSystemId"),
        ({"operator": {"replicas": 9}}, "/operator/replicas"),
        ({"operator": {"logFormat": "xml"}}, "/operator/logFormat"),
        ({"editor": {"workspace": {"accessMode": "ReadOnlyMany"}}}, "/editor/workspace"),
        ({"editor": {"resources": {"requests": {"cpu": "lots"}}}}, "/editor/resources/requests"),
        ({"preview": {"baseUrl": "https://edit.example.com/"}}, "/preview/baseUrl"),
        ({"hermes": {"authPolicy": "none"}}, "/hermes/authPolicy"),
        ({"operator": {"serviceAccount": {"iamRoleArn": "role/x"}}}, "iamRoleArn"),
        ({"hermes": {"routing": {"senders": [{"address": "john"}]}}}, "/hermes/routing/senders/0"),
        ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
        ({"typo": True}, "'typo' not allowed"),
    ],
)
def test_schema_rejects_bad_values(values: dict[str, Any], complaint: str) -> None:
    with pytest.raises(helm_python.HelmValuesError) as caught:
        render(values)
    assert complaint in str(caught.value)


def test_schema_accepts_every_documented_value_set() -> None:
    chart = helm_python.Chart.load(CHART)
    for values in VALUE_SETS.values():
        chart.validate_schema(values)


def test_values_file_is_commented_and_schema_is_json() -> None:
    text = (CHART / "values.yaml").read_text()
    assert text.count("# --") >= 40, "values.yaml documents its values with '# --' comments"
    assert yaml.safe_load(text)["securityContext"]["runAsUser"] == 10001
    assert (ROOT / "docs" / "operations.md").is_file()


def test_default_identity_is_a_pod_identity_association_per_environment() -> None:
    """podIdentity by default: the operator gets the cluster and role; a missing one is named
    at install time, and the modes exclude each other."""
    env = config_env(render(), "operator")
    assert env["WEBORDINARY_OPERATOR_EDITOR_AWS_IDENTITY"] == "pod-identity"
    assert env["WEBORDINARY_OPERATOR_EKS_CLUSTER_NAME"] == REQUIRED["aws"]["eksClusterName"]
    assert env["WEBORDINARY_OPERATOR_EDITOR_ROLE_ARN"] == REQUIRED["editor"]["podIdentityRoleArn"]
    assert "WEBORDINARY_OPERATOR_EDITOR_ROLE_ARN_TEMPLATE" not in env
    for values, complaint in (
        ({}, "aws.eksClusterName is required"),
        ({"aws": {"eksClusterName": "prod"}}, "editor.podIdentityRoleArn is required"),
        (merged(REQUIRED, {"editor": {"iamRoleArnTemplate": "arn:aws:iam::1:role/{name}"}}),
         "editor.iamRoleArnTemplate is for editor.awsIdentity irsa"),
        ({"editor": {"awsIdentity": "irsa"}}, "editor.iamRoleArnTemplate is required"),
    ):
        with pytest.raises(helm_python.HelmRenderError, match=complaint):
            render(values, bare=True)
    irsa = config_env(render(FULL), "operator")
    assert irsa["WEBORDINARY_OPERATOR_EDITOR_AWS_IDENTITY"] == "irsa"
    assert "WEBORDINARY_OPERATOR_EDITOR_ROLE_ARN" not in irsa
    none = config_env(render({"editor": {"awsIdentity": "none"}}, bare=True), "operator")
    assert none["WEBORDINARY_OPERATOR_EDITOR_AWS_IDENTITY"] == "none"
