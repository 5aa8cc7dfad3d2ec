"""Every child manifest is valid Kubernetes (strict schema) and carries the contract."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from webordinary.contracts import naming
from webordinary.contracts.editor_env import EditorEnv
from webordinary.contracts.environment import (
    API_VERSION,
    LABEL_CLIENT,
    LABEL_ENVIRONMENT,
    EditEnvironmentSpec,
    QueueUrls,
)
from webordinary.operator import builders
from webordinary.operator.settings import OperatorSettings

OWNER = builders.Owner(namespace="tenants", name="ameliastamps-website-john", uid="uid-1")
QUEUES = QueueUrls(
    input="http://127.0.0.1:5000/123456789012/webordinary-input-ameliastamps-website-john",
    output="http://127.0.0.1:5000/123456789012/webordinary-output-ameliastamps-website-john",
    dlq="http://127.0.0.1:5000/123456789012/webordinary-dlq-ameliastamps-website-john",
)


def make_spec(**overrides: Any) -> EditEnvironmentSpec:
    data: dict[str, Any] = {
        "clientId": "ameliastamps",
        "projectId": "website",
        "userId": "john",
        "repository": {"url": "https://github.com/ameliastamps/website.git"},
        "sessions": ["1a2b3c4d", "feedbeef"],
    }
    data.update(overrides)
    return EditEnvironmentSpec.model_validate(data)


def make_settings(**overrides: Any) -> OperatorSettings:
    base: dict[str, Any] = {
        "preview_base_url": "https://preview.webordinary.dev",
        "anthropic_secret_name": "anthropic",
        "editor_role_arn_template": "arn:aws:iam::123456789012:role/editor-{namespace}-{name}",
        "gateway_namespace": "webordinary",
    }
    base.update(overrides)
    return OperatorSettings(**base)


def all_children(spec: EditEnvironmentSpec, settings: OperatorSettings, replicas: int = 1) -> (
    list[tuple[builders.Kind, str, dict[str, Any] | None]]
):
    return builders.children(OWNER, spec, QUEUES, replicas, settings)


@pytest.mark.parametrize("replicas", [0, 1])
def test_every_child_is_valid_kubernetes(replicas: int) -> None:
    built = all_children(make_spec(), make_settings(), replicas)
    assert [kind.kind for kind, _, _ in built] == [
        "ServiceAccount", "PersistentVolumeClaim", "NetworkPolicy", "Service", "Deployment",
        "Ingress",
    ]
    for kind, name, manifest in built:
        if kind is builders.INGRESS:
            # Previews go through the gateway: an Ingress of an earlier version is removed.
            assert manifest is None
            assert name == f"{OWNER.name}-preview"
            continue
        assert manifest is not None
        kubernetes_validate.validate(manifest, "1.33.0", strict=True)
        assert manifest["metadata"]["name"] == name
        assert manifest["metadata"]["namespace"] == "tenants"
        assert manifest["kind"] == kind.kind
        assert manifest["apiVersion"] == kind.api_version


def test_minimal_settings_still_valid() -> None:
    settings = OperatorSettings(gateway_namespace=None)
    for kind, _, manifest in all_children(make_spec(repository={
        "url": "https://x/y.git", "credentialsSecretRef": {"name": "git"}}), settings):
        assert (manifest is None) == (kind is builders.INGRESS)
        if manifest is not None:
            kubernetes_validate.validate(manifest, "1.33.0", strict=True)


def test_labels_and_owner_references() -> None:
    for kind, _, manifest in all_children(make_spec(), make_settings()):
        if kind is builders.INGRESS:
            continue
        assert manifest is not None
        meta = manifest["metadata"]
        assert meta["labels"]["app.kubernetes.io/instance"] == OWNER.name
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "webordinary-operator"
        assert meta["labels"][LABEL_CLIENT] == "ameliastamps"
        assert meta["labels"][LABEL_ENVIRONMENT] == OWNER.name
        if kind is builders.PVC:
            assert "ownerReferences" not in meta, "the workspace must outlive the environment"
        else:
            (ref,) = meta["ownerReferences"]
            assert ref == {"apiVersion": API_VERSION, "kind": "EditEnvironment",
                           "name": OWNER.name, "uid": "uid-1", "controller": True,
                           "blockOwnerDeletion": True}


def test_long_ids_give_valid_names_and_labels() -> None:
    spec = make_spec(clientId="A" * 100, projectId="Some.Project", userId="john@example.com")
    name = naming.environment_name(spec.client_id, spec.project_id, spec.user_id)
    owner = builders.Owner("tenants", name, "u")
    for kind, _, manifest in builders.children(owner, spec, QUEUES, 1, make_settings()):
        assert (manifest is None) == (kind is builders.INGRESS)
        if manifest is not None:
            kubernetes_validate.validate(manifest, "1.33.0", strict=True)


def test_deployment_carries_the_editor_contract() -> None:
    spec = make_spec(
        idleTimeout="45m",
        repository={"url": "https://x/site.git", "branch": "live",
                    "credentialsSecretRef": {"name": "git-creds"}},
        editor={"image": "registry/editor:1.2", "env": [{"name": "LOG_LEVEL", "value": "debug"}],
                "resources": {"limits": {"memory": "4Gi"}}},
    )
    dep = builders.deployment(OWNER, spec, QUEUES, 1, make_settings(sqs_endpoint_url="http://m"))
    pod = dep["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in pod["containers"]}
    assert list(containers) == ["editor", "preview", "credentials"]
    container = containers["editor"]
    plain = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    contract = EditorEnv.from_env(plain)
    assert contract.input_queue_url == QUEUES.input
    assert contract.dlq_url == QUEUES.dlq
    assert contract.repository_branch == "live"
    assert contract.idle_timeout_seconds == 45 * 60
    assert contract.sqs_endpoint_url == "http://m"
    assert contract.workspace == "/workspace"
    assert plain["LOG_LEVEL"] == "debug"
    # The secrets are mapped into the credential proxy's container only.
    for name in ("editor", "preview"):
        assert not [e for e in containers[name]["env"] if "valueFrom" in e], name
    proxy = containers["credentials"]
    secrets = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in proxy["env"]
               if "valueFrom" in e}
    assert secrets == {"ANTHROPIC_API_KEY": {"name": "anthropic", "key": "api-key"},
                       "WEBORDINARY_GIT_TOKEN": {"name": "git-creds", "key": "token"}}
    assert plain["WEBORDINARY_EDITOR_CREDENTIALS_URL"] == "http://127.0.0.1:8099"
    assert all(c["image"] == "registry/editor:1.2" for c in containers.values())
    assert container["resources"]["limits"]["memory"] == "4Gi"
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"metrics": 9090}
    assert {p["name"]: p["containerPort"] for p in containers["preview"]["ports"]} == {
        "preview": 4321, "preview-metrics": 9091, "control": 4322}
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["volumeMounts"][0] == {"name": "workspace", "mountPath": "/workspace"}
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == f"{OWNER.name}-workspace"
    assert dep["spec"]["strategy"] == {"type": "Recreate"}
    assert pod["terminationGracePeriodSeconds"] >= 120
    assert pod["serviceAccountName"] == f"{OWNER.name}-editor"


def test_restricted_security_context() -> None:
    dep = builders.deployment(OWNER, make_spec(), QUEUES, 1, make_settings())
    pod = dep["spec"]["template"]["spec"]
    for container in pod["containers"] + pod["initContainers"]:
        ctx = container["securityContext"]
        assert ctx["allowPrivilegeEscalation"] is False
        assert ctx["capabilities"] == {"drop": ["ALL"]}
        assert ctx["runAsNonRoot"] is True
        assert ctx["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["fsGroup"] == 1000


def test_replicas_are_zero_or_one() -> None:
    assert builders.deployment(OWNER, make_spec(), QUEUES, 0, make_settings())["spec"][
        "replicas"] == 0
    with pytest.raises(ValueError, match="0 or 1"):
        builders.deployment(OWNER, make_spec(), QUEUES, 2, make_settings())
    with pytest.raises(ValueError, match="queue"):
        builders.deployment(OWNER, make_spec(), QueueUrls(input="x"), 1, make_settings())


def test_service_account_irsa_annotation() -> None:
    sa = builders.service_account(OWNER, make_spec(), make_settings())
    assert sa["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn":
            "arn:aws:iam::123456789012:role/editor-tenants-ameliastamps-website-john"}
    plain = builders.service_account(OWNER, make_spec(), OperatorSettings())
    assert "annotations" not in plain["metadata"]


def test_pvc_is_rwx_on_efs() -> None:
    pvc = builders.persistent_volume_claim(OWNER, make_spec(storage={"size": "10Gi"}))
    assert pvc["spec"] == {"accessModes": ["ReadWriteMany"], "storageClassName": "efs-sc",
                           "resources": {"requests": {"storage": "10Gi"}}}


def test_no_ingress_per_environment_whatever_the_sessions() -> None:
    for sessions in ([], ["1a2b3c4d"], [f"t{i:015x}" for i in range(150)]):
        plan = all_children(make_spec(sessions=sessions), make_settings())
        assert [m for k, _, m in plan if k is builders.INGRESS] == [None]


def test_network_policy_admits_previews_only_from_gateway_pods() -> None:
    pol = builders.network_policy(OWNER, make_spec(), make_settings(
        metrics_scraper_namespace="monitoring",
        gateway_pod_labels={"app.kubernetes.io/name": "webordinary",
                            "app.kubernetes.io/component": "gateway"}))
    spec = pol["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["podSelector"]["matchLabels"] == builders.selector_labels(OWNER)
    previews, scrapes = spec["ingress"]
    assert previews == {
        "from": [{
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "webordinary",
                                            "app.kubernetes.io/component": "gateway"}},
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name":
                                                  "webordinary"}},
        }],
        "ports": [{"protocol": "TCP", "port": 4321}],
    }
    # Scrapers reach the metrics port only, never the preview.
    assert {"protocol": "TCP", "port": 9090} in scrapes["ports"]
    assert all(port["port"] != 4321 for port in scrapes["ports"])
    assert all("ipBlock" not in peer for rule in spec["ingress"] for peer in rule["from"])
    egress_ports = {(p["protocol"], p["port"]) for rule in spec["egress"] for p in rule["ports"]}
    assert egress_ports == {("UDP", 53), ("TCP", 53), ("TCP", 443), ("TCP", 80)}  # 80: EKS agent
    assert all(rule["to"] for rule in spec["egress"]), "every egress rule names its peers"
    # No namespace configured: gateway pods by label in any namespace, never "everyone".
    anywhere = builders.network_policy(OWNER, make_spec(), OperatorSettings())
    (rule,) = anywhere["spec"]["ingress"]
    (peer,) = rule["from"]
    assert peer["namespaceSelector"] == {}
    assert peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "gateway"


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ([{"name": "WEBORDINARY_INPUT_QUEUE_URL", "value": "x"}], "spec.editor.env[0].name"),
        ([{"name": "A"}, {"name": "ANTHROPIC_API_KEY"}], "spec.editor.env[1].name"),
        ([{"name": "AWS_ACCESS_KEY_ID"}], "spec.editor.env[0].name"),
        ([{"name": "A"}, {"name": "A"}], "spec.editor.env[1].name"),
    ],
)
def test_semantic_spec_errors_name_the_field(env: list[dict[str, str]], field: str) -> None:
    with pytest.raises(builders.SpecError) as err:
        builders.children(OWNER, make_spec(editor={"env": env}), QUEUES, 1, make_settings())
    assert err.value.field == field
    assert str(err.value).startswith(field)


def test_owned_view_and_subset_ignore_server_defaults() -> None:
    dep = builders.deployment(OWNER, make_spec(), QUEUES, 1, make_settings())
    live: dict[str, Any] = {
        **dep,
        "metadata": {**dep["metadata"], "uid": "x", "resourceVersion": "7", "generation": 2},
        "status": {"replicas": 1},
    }
    live["spec"] = {**dep["spec"], "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600}
    view = builders.owned_view(builders.DEPLOYMENT, dep)
    assert builders.is_subset(view, live)
    changed = builders.deployment(OWNER, make_spec(), QUEUES, 0, make_settings())
    assert not builders.is_subset(builders.owned_view(builders.DEPLOYMENT, changed), live)
    pvc = builders.persistent_volume_claim(OWNER, make_spec())
    assert "spec" not in builders.owned_view(builders.PVC, pvc)


@pytest.mark.parametrize(
    ("desired", "observed", "expected"),
    [
        ({"a": 1}, {"a": 1, "b": 2}, True),
        ({"a": 1}, {"a": 2}, False),
        ({"a": [1, 2]}, {"a": [1, 2, 3]}, False),
        ({"a": [{"x": 1}]}, {"a": [{"x": 1, "y": 2}]}, True),
        ({"a": True}, {"a": 1}, False),
        ({"a": {}}, {}, False),
    ],
)
def test_is_subset(desired: Any, observed: Any, expected: bool) -> None:
    assert builders.is_subset(desired, observed) is expected


def test_no_deployment_until_the_queues_exist() -> None:
    kinds = [k.kind for k, _, _ in builders.children(
        OWNER, make_spec(), QueueUrls(input="x"), 1, make_settings())]
    assert "Deployment" not in kinds
    assert "Service" in kinds


def test_editor_shutdown_fits_inside_the_pod_grace_period() -> None:
    from webordinary.editor.settings import EditorSettings

    settings = make_settings(editor_termination_grace_seconds=90)
    dep = builders.deployment(OWNER, make_spec(), QUEUES, 1, settings)
    pod = dep["spec"]["template"]["spec"]
    plain = {e["name"]: e["value"] for e in pod["containers"][0]["env"] if "value" in e}
    editor_grace = float(plain["WEBORDINARY_EDITOR_SHUTDOWN_GRACE_SECONDS"])
    assert 0 < editor_grace < pod["terminationGracePeriodSeconds"] == 90
    assert "shutdown_grace_seconds" in EditorSettings.model_fields


def test_editor_holds_no_kubernetes_token() -> None:
    settings = make_settings()
    sa = builders.service_account(OWNER, make_spec(), settings)
    pod = builders.deployment(OWNER, make_spec(), QUEUES, 1, settings)["spec"]["template"]["spec"]
    assert sa["automountServiceAccountToken"] is False
    assert pod["automountServiceAccountToken"] is False


@pytest.mark.parametrize(("endpoint", "ports"), [
    (None, [443]),
    ("https://sqs.eu-west-1.amazonaws.com", [443]),
    ("http://moto.webordinary-dev.svc:5000", [443, 5000]),
    ("http://localstack", [443, 80]),
])
def test_egress_allows_https_and_a_dev_sqs_endpoint(endpoint: str | None, ports: list[int]) -> None:
    policy = builders.network_policy(OWNER, make_spec(), make_settings(
        sqs_endpoint_url=endpoint, eks_pod_identity_agent=False))
    dns, *others = policy["spec"]["egress"]
    assert {p["port"] for p in dns["ports"]} == {53}
    assert [p["port"] for rule in others for p in rule["ports"]] == ports
