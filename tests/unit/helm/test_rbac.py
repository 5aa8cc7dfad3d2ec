"""RBAC: the operator and Hermes may do what they need, and nothing more."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.helm.chart_render import NAMESPACE, Rendered, fullname, render
from webordinary.operator.childwatch import WATCHED

CHILDREN = [
    ("apps", "deployments"),
    ("", "services"),
    ("", "persistentvolumeclaims"),
    ("", "serviceaccounts"),
    ("networking.k8s.io", "networkpolicies"),
]
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}


def allows(rules: list[dict[str, Any]], group: str, resource: str, verb: str) -> bool:
    return any(
        group in rule.get("apiGroups", []) and resource in rule.get("resources", [])
        and verb in rule.get("verbs", [])
        for rule in rules
    )


def rules_bound_to(rendered: Rendered, service_account: str, namespace: str) -> list[
        dict[str, Any]]:
    """Every rule granted to a ServiceAccount in `namespace` (or cluster-wide)."""
    granted: list[dict[str, Any]] = []
    for binding in rendered.all("RoleBinding") + rendered.all("ClusterRoleBinding"):
        if binding["kind"] == "RoleBinding" and binding["metadata"]["namespace"] != namespace:
            continue
        if not any(s["kind"] == "ServiceAccount" and s["name"] == service_account
                   and s["namespace"] == NAMESPACE for s in binding["subjects"]):
            continue
        ref = binding["roleRef"]
        role = rendered.get(ref["kind"], ref["name"])
        if ref["kind"] == "Role":
            assert role["metadata"]["namespace"] == binding["metadata"]["namespace"]
        granted.extend(role["rules"])
    return granted


@pytest.mark.parametrize("cluster_wide", [False, True])
def test_operator_may_reconcile_editenvironments(cluster_wide: bool) -> None:
    rendered = render({"operator": {"clusterWide": cluster_wide},
                       "environments": {"namespace": "tenants"}})
    rules = rules_bound_to(rendered, fullname("operator"), "tenants")
    for verb in ("get", "list", "watch", "patch"):
        assert allows(rules, "webordinary.dev", "editenvironments", verb), verb
    assert allows(rules, "webordinary.dev", "editenvironments/status", "patch")
    assert allows(rules, "webordinary.dev", "editenvironments/finalizers", "update")
    for group, resource in CHILDREN:
        for verb in ("get", "list", "watch", "create", "patch", "delete"):
            assert allows(rules, group, resource, verb), f"{verb} {group}/{resource}"
    # Ingresses: only to remove the per-environment ones of versions before the gateway.
    assert allows(rules, "networking.k8s.io", "ingresses", "get")
    assert allows(rules, "networking.k8s.io", "ingresses", "delete")
    assert not allows(rules, "networking.k8s.io", "ingresses", "create")
    assert allows(rules, "", "events", "create")
    assert allows(rules, "apiextensions.k8s.io", "customresourcedefinitions", "watch")
    assert allows(rules, "", "namespaces", "list"), "kopf's namespace observer (namespaced mode)"
    assert allows(rules, "", "namespaces", "watch")
    elsewhere = rules_bound_to(rendered, fullname("operator"), "kube-system")
    assert allows(elsewhere, "apps", "deployments", "create") is cluster_wide


def test_operator_binding_scope_follows_cluster_wide() -> None:
    namespaced = render({"environments": {"namespace": "tenants"}})
    binding = namespaced.get("RoleBinding", fullname("operator"))
    assert binding["metadata"]["namespace"] == "tenants"
    assert not namespaced.has("ClusterRoleBinding", fullname("operator"))
    wide = render({"operator": {"clusterWide": True}})
    assert wide.has("ClusterRoleBinding", fullname("operator"))
    assert not wide.has("RoleBinding", fullname("operator"))


def test_hermes_may_get_create_patch_editenvironments_only() -> None:
    rendered = render({"environments": {"namespace": "tenants"}})
    rules = rules_bound_to(rendered, fullname("hermes"), "tenants")
    for verb in ("get", "list", "watch", "create", "patch"):
        assert allows(rules, "webordinary.dev", "editenvironments", verb), verb
    assert not allows(rules, "webordinary.dev", "editenvironments", "delete")
    assert not allows(rules, "webordinary.dev", "editenvironments/status", "patch")
    assert rules_bound_to(rendered, fullname("hermes"), NAMESPACE) == []
    assert all(rule["apiGroups"] == ["webordinary.dev"] for rule in rules)


@pytest.mark.parametrize("cluster_wide", [False, True])
def test_gateway_may_watch_and_patch_editenvironments_and_read_endpoint_slices(
    cluster_wide: bool,
) -> None:
    rendered = render({"operator": {"clusterWide": cluster_wide},
                       "environments": {"namespace": "tenants"}})
    rules = rules_bound_to(rendered, fullname("gateway"), "tenants")
    for verb in ("list", "watch", "patch"):
        assert allows(rules, "webordinary.dev", "editenvironments", verb), verb
    for verb in ("list", "watch"):
        assert allows(rules, "discovery.k8s.io", "endpointslices", verb), verb
    for verb in ("create", "delete", "update"):
        assert not allows(rules, "webordinary.dev", "editenvironments", verb), verb
    assert not allows(rules, "webordinary.dev", "editenvironments/status", "patch")
    assert {g for rule in rules for g in rule["apiGroups"]} == {
        "webordinary.dev", "discovery.k8s.io"}
    elsewhere = rules_bound_to(rendered, fullname("gateway"), "kube-system")
    assert allows(elsewhere, "webordinary.dev", "editenvironments", "watch") is cluster_wide


def test_the_api_server_limits_gateway_patches_to_two_annotations() -> None:
    rendered = render(kube_version="1.33.0")
    policy = rendered.get("ValidatingAdmissionPolicy", fullname() + "-front-door-writes")
    (condition,) = policy["spec"]["matchConditions"]
    gateway = f"system:serviceaccount:{NAMESPACE}:{fullname('gateway')}"
    assert f'"{gateway}"' in condition["expression"], "the chart's gateway is an annotator"


@pytest.mark.parametrize("cluster_wide", [False, True])
def test_least_privilege(cluster_wide: bool) -> None:
    rendered = render({"operator": {"clusterWide": cluster_wide}})
    for role in rendered.all("ClusterRole") + rendered.all("Role"):
        for rule in role["rules"]:
            name = role["metadata"]["name"]
            assert "*" not in rule["verbs"], f"{name}: wildcard verb"
            assert "*" not in rule["resources"], f"{name}: wildcard resource"
            assert "*" not in rule.get("apiGroups", []), f"{name}: wildcard group"
            forbidden = {"secrets", "pods/exec", "roles", "rolebindings", "clusterroles",
                         "clusterrolebindings", "nodes"}
            if name == fullname("operator") and rule["resources"] == ["secrets"]:
                # One Secret by name, to check an environment's git Secret carries its client
                # label: no more than creating Deployments that reference Secrets already gives.
                assert rule["verbs"] == ["get"], "never list/watch (every Secret's data)"
                continue
            assert not forbidden & set(rule["resources"]), f"{name}: {rule['resources']}"
            assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"]), name
    framework = rendered.get("ClusterRole", fullname("operator") + "-framework")
    for rule in framework["rules"]:
        assert not WRITE_VERBS & set(rule["verbs"]), "the cluster-wide framework role is read-only"


def test_bindings_name_rendered_service_accounts() -> None:
    rendered = render({"operator": {"serviceAccount": {"name": "custom-op"}}})
    accounts = {sa["metadata"]["name"] for sa in rendered.all("ServiceAccount")}
    assert "custom-op" in accounts
    for binding in rendered.all("RoleBinding") + rendered.all("ClusterRoleBinding"):
        for subject in binding["subjects"]:
            assert subject["name"] in accounts, binding["metadata"]["name"]
    for deployment in rendered.all("Deployment"):
        spec = deployment["spec"]["template"]["spec"]
        if "serviceAccountName" in spec:
            assert spec["serviceAccountName"] in accounts


@pytest.mark.parametrize("cluster_wide", [False, True])
def test_operator_may_list_and_watch_every_child_it_watches(cluster_wide: bool) -> None:
    """What operator/childwatch.py lists and watches, from the code itself."""
    rendered = render({"operator": {"clusterWide": cluster_wide},
                       "environments": {"namespace": "tenants"}})
    rules = rules_bound_to(rendered, fullname("operator"), "tenants")
    for watched in WATCHED:
        group = watched.resource.api_version.rpartition("/")[0]
        for verb in ("list", "watch"):
            assert allows(rules, group, watched.resource.plural, verb), (
                f"{verb} {group}/{watched.resource.plural}")
