"""Pods: hardened, probed, sized; Services and NetworkPolicies point at the right pods and ports."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.helm.chart_render import FULL, Rendered, ci_values, config_env, fullname, render

VALUE_SETS: dict[str, dict[str, Any]] = {"default": {}, "full": FULL, **ci_values()}


@pytest.fixture(scope="module", params=sorted(VALUE_SETS))
def rendered(request: pytest.FixtureRequest) -> Rendered:
    return render(VALUE_SETS[request.param])


def pod_spec(rendered: Rendered, component: str) -> dict[str, Any]:
    spec: dict[str, Any] = rendered.get("Deployment", fullname(component))["spec"]["template"][
        "spec"]
    return spec


def port_names(container: dict[str, Any]) -> set[str]:
    return {p["name"] for p in container.get("ports", [])}


def test_every_container_is_restricted(rendered: Rendered) -> None:
    for deployment, container in rendered.containers():
        where = f"{deployment['metadata']['name']}/{container['name']}"
        pod = deployment["spec"]["template"]["spec"]["securityContext"]
        assert pod["runAsNonRoot"] is True, where
        assert pod["seccompProfile"]["type"] == "RuntimeDefault", where
        ctx = container["securityContext"]
        assert ctx["allowPrivilegeEscalation"] is False, where
        assert ctx["capabilities"]["drop"] == ["ALL"], where
        assert "add" not in ctx["capabilities"], where
        assert ctx.get("privileged", False) is False, where
        assert ctx["runAsNonRoot"] is True, where
        assert ctx["seccompProfile"]["type"] == "RuntimeDefault", where
        spec = deployment["spec"]["template"]["spec"]
        for host in ("hostNetwork", "hostPID", "hostIPC"):
            assert not spec.get(host), f"{where}: {host}"
        assert not [v for v in spec.get("volumes", []) if "hostPath" in v], where


def test_our_pods_run_as_the_image_user_with_a_read_only_root() -> None:
    rendered = render(FULL)
    for component in ("operator", "hermes"):
        spec = pod_spec(rendered, component)
        assert spec["securityContext"]["runAsUser"] == 10001
        (container,) = spec["containers"]
        assert container["securityContext"]["runAsUser"] == 10001
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert "/tmp" in mounts, "a read-only root needs a writable /tmp"
        volumes = {v["name"] for v in spec["volumes"]}
        assert {m["name"] for m in container["volumeMounts"]} <= volumes


def test_every_container_has_resources_and_probes(rendered: Rendered) -> None:
    for deployment, container in rendered.containers():
        where = f"{deployment['metadata']['name']}/{container['name']}"
        resources = container["resources"]
        assert {"cpu", "memory"} <= resources["requests"].keys(), where
        assert "memory" in resources["limits"], where
        assert "livenessProbe" in container, where
        assert "readinessProbe" in container, where
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            if probe not in container:
                continue
            handler = container[probe].get("httpGet") or container[probe].get("tcpSocket")
            assert handler is not None, where
            port = handler["port"]
            if isinstance(port, str):
                assert port in port_names(container), f"{where} {probe} port {port}"


def test_only_the_dev_values_make_the_root_writable() -> None:
    for name, values in VALUE_SETS.items():
        rendered = render(values)
        writable = not values.get("securityContext", {}).get("readOnlyRootFilesystem", True)
        for component in ("operator", "hermes"):
            (container,) = pod_spec(rendered, component)["containers"]
            assert container["securityContext"]["readOnlyRootFilesystem"] is not writable, name
    assert [n for n, v in VALUE_SETS.items()
            if v.get("securityContext", {}).get("readOnlyRootFilesystem") is False] == [
        "kind-values.yaml"]


def test_only_our_components_get_an_api_token(rendered: Rendered) -> None:
    for deployment in rendered.all("Deployment"):
        spec = deployment["spec"]["template"]["spec"]
        component = deployment["metadata"]["labels"]["app.kubernetes.io/component"]
        if component in ("operator", "hermes", "gateway"):
            assert spec["serviceAccountName"] == fullname(component)
        else:
            assert spec["automountServiceAccountToken"] is False, component


def test_singletons_never_overlap(rendered: Rendered) -> None:
    for component in ("operator", "hermes"):
        deployment = rendered.get("Deployment", fullname(component))
        env = config_env(rendered, component)
        if component == "operator" and deployment["spec"]["replicas"] > 1:
            # several operator replicas only with kopf peering: one active, the others paused
            assert env["WEBORDINARY_OPERATOR_PEERING_NAME"]
            continue
        assert "WEBORDINARY_OPERATOR_PEERING_NAME" not in env
        assert deployment["spec"]["replicas"] == 1
        assert deployment["spec"]["strategy"]["type"] == "Recreate"


def test_selectors_match_pod_labels(rendered: Rendered) -> None:
    for deployment in rendered.all("Deployment"):
        selector = deployment["spec"]["selector"]["matchLabels"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), deployment["metadata"]["name"]
        assert "app.kubernetes.io/version" not in selector, "selectors are immutable"


def test_services_reach_named_container_ports(rendered: Rendered) -> None:
    for service in rendered.all("Service"):
        selected = [
            d for d in rendered.all("Deployment")
            if service["spec"]["selector"].items() <= d["spec"]["template"]["metadata"][
                "labels"].items()
        ]
        assert len(selected) == 1, service["metadata"]["name"]
        names = set().union(*(port_names(c) for c in selected[0]["spec"]["template"]["spec"][
            "containers"]))
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in names, f"{service['metadata']['name']}: {port}"


def test_network_policies_select_our_pods_and_named_ports(rendered: Rendered) -> None:
    policies = rendered.all("NetworkPolicy")
    assert {p["metadata"]["name"] for p in policies} == {
        fullname("operator"), fullname("hermes"), fullname("gateway")}
    for policy in policies:
        component = policy["metadata"]["labels"]["app.kubernetes.io/component"]
        deployment = rendered.get("Deployment", fullname(component))
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        for rule in policy["spec"]["ingress"]:
            for port in rule["ports"]:
                assert port["port"] in port_names(container), port
        egress = policy["spec"]["egress"]
        egress_ports = {p["port"] for rule in egress for p in rule.get("ports", [])}
        assert {53, 443} <= egress_ports, "DNS and HTTPS (AWS, the API server)"


def test_network_policies_are_tight() -> None:
    rendered = render({"tests": {"enabled": False}})
    policy = rendered.get("NetworkPolicy", fullname("hermes"))
    (rule,) = policy["spec"]["ingress"]
    assert rule["from"] == [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "monitoring"}}}]
    assert [p["port"] for p in rule["ports"]] == ["metrics"]
    assert all(rule.get("ports") for rule in policy["spec"]["egress"]), "no all-ports egress"
    smtp = render({"hermes": {"smtp": {"enabled": True, "outboundHost": "mailpit"}}})
    policy = smtp.get("NetworkPolicy", fullname("hermes"))
    assert any(p["port"] == "smtp" for r in policy["spec"]["ingress"] for p in r["ports"])
    assert any(p["port"] == 1025 for r in policy["spec"]["egress"] for p in r["ports"])
    assert not render({"networkPolicy": {"enabled": False}}).all("NetworkPolicy")
    # with `helm test` on (the default): only the test pod, only to the health endpoints
    for component, port in (("operator", "health"), ("hermes", "metrics")):
        policy = render().get("NetworkPolicy", fullname(component))
        rule = policy["spec"]["ingress"][-1]
        assert rule["from"] == [{"podSelector": {"matchLabels": {
            "app.kubernetes.io/name": "webordinary", "app.kubernetes.io/instance": "wo",
            "app.kubernetes.io/component": "test"}}}]
        assert [p["port"] for p in rule["ports"]] == [port]


def test_operator_liveness_is_kopfs_endpoint() -> None:
    rendered = render({"operator": {"healthPort": 8181}})
    (container,) = pod_spec(rendered, "operator")["containers"]
    assert "args" not in container, "python -m webordinary.operator reads its settings from env"
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert {"name": "health", "containerPort": 8181, "protocol": "TCP"} in container["ports"]
    env = rendered.get("ConfigMap", fullname("operator"))["data"]
    assert env["WEBORDINARY_OPERATOR_LIVENESS_PORT"] == "8181"


def test_hermes_mounts_the_routing_config_as_a_directory() -> None:
    rendered = render()
    spec = pod_spec(rendered, "hermes")
    (container,) = spec["containers"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "routing")
    assert "subPath" not in mount, "subPath mounts never see ConfigMap updates"
    volume = next(v for v in spec["volumes"] if v["name"] == "routing")
    config_map = rendered.get("ConfigMap", volume["configMap"]["name"])
    assert "routing.yaml" in config_map["data"]


def test_config_changes_roll_the_pods_but_routing_edits_do_not() -> None:
    def checksum(values: dict[str, Any], component: str) -> str:
        deployment = render(values).get("Deployment", fullname(component))
        return str(deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"])

    base_operator, base_hermes = checksum({}, "operator"), checksum({}, "hermes")
    assert checksum({"operator": {"logLevel": "DEBUG"}}, "operator") != base_operator
    assert checksum({"hermes": {"logLevel": "DEBUG"}}, "hermes") != base_hermes
    routing = {"hermes": {"routing": {"senders": [
        {"address": "a@b.example", "clientId": "c", "userId": "u"}]}}}
    assert checksum(routing, "hermes") == base_hermes, "routing.yaml is reloaded live"


def test_dev_services_are_reachable_by_name() -> None:
    rendered = render(ci_values()["kind-values.yaml"], name="webordinary")
    moto = rendered.get("Service", "webordinary-moto")
    mailpit = rendered.get("Service", "webordinary-mailpit")
    env = rendered.get("ConfigMap", "webordinary-operator")["data"]
    assert env["WEBORDINARY_OPERATOR_SQS_ENDPOINT_URL"] == (
        f"http://{moto['metadata']['name']}:{moto['spec']['ports'][0]['port']}")
    hermes = rendered.get("ConfigMap", "webordinary-hermes")["data"]
    assert hermes["WEBORDINARY_HERMES_SMTP_OUTBOUND_HOST"] == mailpit["metadata"]["name"]
    assert int(hermes["WEBORDINARY_HERMES_SMTP_OUTBOUND_PORT"]) in {
        p["port"] for p in mailpit["spec"]["ports"]}
