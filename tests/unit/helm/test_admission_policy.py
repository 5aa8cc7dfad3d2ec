"""The chart's ValidatingAdmissionPolicies, evaluated (CEL) against the writes Hermes really
makes and against the forbidden ones a compromised Hermes would try; each refusal has a clear
message, and the spec rules say exactly what the operator says (contracts.specpolicy)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from functools import cache
from typing import Any

import pytest
import yaml

from tests.unit.helm.chart_render import CHART, NAMESPACE, fullname, render
from tests.unit.helm.vap_eval import (
    Policy,
    Request,
    admit,
    apply_defaults,
    json_patch,
    merge_patch,
    policies,
)
from webordinary.contracts import activity, naming, specpolicy
from webordinary.contracts.environment import (
    ANNOTATION_ACTIVITY,
    ANNOTATION_RELEASE_FINALIZER,
    ANNOTATION_WAKE,
    LABEL_CLIENT,
    EditEnvironmentSpec,
    Repository,
    SecretKeyRef,
)
from webordinary.hermes import environments
from webordinary.hermes.routing import Route

TENANTS = "tenants"
HERMES = f"system:serviceaccount:{NAMESPACE}:{fullname('hermes')}"
GATEWAY = f"system:serviceaccount:{NAMESPACE}:wo-webordinary-gateway"
SRE = "sre@example.com"
OPERATOR = f"system:serviceaccount:{NAMESPACE}:{fullname('operator')}"
ALLOWED_PREFIX = "registry.example/webordinary/editor@sha256:"
VALUES: dict[str, Any] = {
    "environments": {"namespace": TENANTS},
    "editor": {"allowedImages": [ALLOWED_PREFIX + "*"]},
    "admissionPolicy": {"annotators": [f"{NAMESPACE}:wo-webordinary-gateway"]},
}
NOW = datetime(2026, 11, 28, 20, 0, tzinfo=UTC)


def secret(name: str, client: str | None) -> dict[str, Any]:
    labels = {LABEL_CLIENT: client} if client else {}
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": TENANTS, "labels": labels},
            "data": {"token": "c2VjcmV0"}}


SECRETS = [secret("anthropic-api-key", None), secret("ameliastamps-git", "ameliastamps"),
           secret("otherclient-git", "otherclient")]


@cache
def chart_policies() -> tuple[Policy, ...]:
    return tuple(policies(render(VALUES, kube_version="1.33.0").objects))


@cache
def crd_schema() -> dict[str, Any]:
    crd = yaml.safe_load((CHART / "crds" / "editenvironments.webordinary.dev.yaml").read_text())
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def stored(obj: dict[str, Any]) -> dict[str, Any]:
    """What the API server has in hand at admission: the body with the CRD's defaults."""
    return apply_defaults(copy.deepcopy(obj), crd_schema())


def route(credentials: str | None = "ameliastamps-git", client: str = "ameliastamps") -> Route:
    ref = SecretKeyRef(name=credentials) if credentials else None
    return Route(client_id=client, project_id="website", user_id="john",
                 repository=Repository(url="https://github.com/ameliastamps/website.git",
                                       credentials_secret_ref=ref),
                 address="website@edit.webordinary.dev")


def hermes_created(r: Route | None = None) -> dict[str, Any]:
    r = r or route()
    name = naming.environment_name(r.client_id, r.project_id, r.user_id)
    return stored(environments.new_environment(name, TENANTS, r, "0123456789abcdef"))


def existing() -> dict[str, Any]:
    """An environment as it lives in the cluster: operator finalizer, kopf and SRE marks."""
    obj = hermes_created()
    obj["metadata"].update(finalizers=["webordinary.dev/cleanup"], resourceVersion="7",
                           annotations={"kopf.webordinary.dev/last-handled": "{}"})
    obj["status"] = {"phase": "Sleeping"}
    return obj


def create(obj: dict[str, Any], user: str = HERMES) -> Request:
    return Request("CREATE", user, obj, namespace=TENANTS)


def update(old: dict[str, Any], new: dict[str, Any], user: str = HERMES,
           subresource: str = "") -> Request:
    return Request("UPDATE", user, stored(new), old, subresource=subresource, namespace=TENANTS)


def denials(request: Request) -> list[str]:
    return admit(chart_policies(), request, SECRETS)


# --- what Hermes (and the gateway) really write is admitted --------------------------------


def test_the_objects_hermes_creates_are_admitted() -> None:
    for r in (route(), route(credentials=None),
              route(client="Amelia.Stamps", credentials=None)):
        assert denials(create(hermes_created(r))) == [], r


def test_hermes_session_wake_and_activity_writes_are_admitted() -> None:
    old = existing()
    ops = environments.session_patch(old, "feedbeef00000000")
    assert ops is not None
    assert denials(update(old, json_patch(old, ops))) == []
    for patch in (environments.wake_patch(NOW), activity.activity_patch(NOW),
                  activity.wake_patch(NOW)):
        assert denials(update(old, merge_patch(old, patch))) == [], patch


def test_hermes_dropping_the_oldest_session_at_the_cap_is_admitted() -> None:
    old = existing()
    old["spec"]["sessions"] = [f"{i:016x}" for i in range(environments.MAX_SESSIONS)]
    ops = environments.session_patch(old, "feedbeef00000000")
    assert ops is not None
    assert denials(update(old, json_patch(old, ops))) == []


def test_gateway_stamps_are_admitted() -> None:
    old = existing()
    for patch in (activity.activity_patch(NOW), activity.wake_patch(NOW)):
        assert denials(update(old, merge_patch(old, patch), user=GATEWAY)) == []


def test_sre_and_operator_writes_within_the_rules_are_admitted() -> None:
    old = existing()
    sre = merge_patch(old, {"spec": {"idleTimeout": "1h", "suspend": True, "editor": {
        "image": ALLOWED_PREFIX + "ab" * 32,
        "env": [{"name": "PUBLIC_SITE_TITLE", "value": "x"}],
        "resources": {"requests": {"cpu": "2"}, "limits": {"memory": "8Gi"}}}},
        "metadata": {"annotations": {ANNOTATION_RELEASE_FINALIZER: "true"}}})
    assert denials(update(old, sre, user=SRE)) == []
    status = merge_patch(old, {"status": {"phase": "Ready"}})
    assert denials(update(old, status, user=OPERATOR, subresource="status")) == []
    assert denials(Request("DELETE", SRE, None, old, namespace=TENANTS)) == []


# --- what a compromised Hermes would try is refused, each with a clear message -------------


def forbidden_cases() -> dict[str, tuple[Request, list[str]]]:
    old = existing()
    hostile_route = route(credentials="otherclient-git")
    evil_create = hermes_created()
    evil_create["spec"]["editor"] = {"image": "evil.example/miner:latest", "env": []}
    suspended = hermes_created()
    suspended["spec"].update(idleTimeout="9999h", suspend=False)
    mislabelled = hermes_created()
    mislabelled["metadata"]["labels"][LABEL_CLIENT] = "otherclient"
    return {
        "image override on create": (create(evil_create), [
            "spec.editor.image: evil.example/miner:latest is not an allowed editor image",
            f"spec.editor may not be set by {HERMES}"]),
        "image override on update": (
            update(old, merge_patch(old, {"spec": {"editor": {"image": "evil/x:1"}}})),
            ["spec.editor.image: evil/x:1 is not an allowed editor image",
             f"spec.editor may not be changed by {HERMES} (Hermes only adds sessions)"]),
        "reserved env names": (
            update(old, merge_patch(old, {"spec": {"editor": {"env": [
                {"name": "NODE_OPTIONS", "value": "--require /tmp/x.js"},
                {"name": "ANTHROPIC_BASE_URL", "value": "http://evil"}]}}})),
            ["spec.editor.env: NODE_OPTIONS, ANTHROPIC_BASE_URL reserved (names starting with "
             "ANTHROPIC_, AWS_, CLAUDE_, GIT_, NODE_, NPM_, WEBORDINARY_ are set by the "
             "platform only)"]),
        "999Gi": (
            update(old, merge_patch(old, {"spec": {"editor": {"resources": {
                "limits": {"memory": "999Gi"}}}}})),
            ["spec.editor.resources.limits: memory=999Gi above the cap "
             "(cpu 4, ephemeral-storage 20Gi, memory 8Gi)"]),
        "foreign secret on create": (create(hermes_created(hostile_route)), [
            "spec.repository.credentialsSecretRef: Secret otherclient-git is not labelled "
            "webordinary.dev/client=ameliastamps"]),
        "platform secret on update": (
            update(old, merge_patch(old, {"spec": {"repository": {
                "credentialsSecretRef": {"name": "anthropic-api-key", "key": "api-key"}}}})),
            ["spec.repository.credentialsSecretRef: Secret anthropic-api-key is not labelled",
             f"spec.repository may not be changed by {HERMES}"]),
        "status write": (
            update(old, merge_patch(old, {"status": {"phase": "Ready"}}),
                   subresource="status"),
            [f"{HERMES} may not write editenvironments/status (only the operator writes status)"]),
        "delete": (Request("DELETE", HERMES, None, old, namespace=TENANTS),
                   [f"{HERMES} may not delete EditEnvironments"]),
        "release the finalizer": (
            update(old, merge_patch(old, {"metadata": {"annotations": {
                ANNOTATION_RELEASE_FINALIZER: "true"}}})),
            [f"metadata.annotations: {ANNOTATION_RELEASE_FINALIZER} may not be written by"]),
        "drop the finalizer": (
            update(old, merge_patch(old, {"metadata": {"finalizers": None}})),
            [f"metadata: {HERMES} may not change labels, finalizers or owner references"]),
        "relabel to another client": (
            update(old, merge_patch(old, {"metadata": {"labels": {LABEL_CLIENT: "x"}}})),
            [f"metadata: {HERMES} may not change labels, finalizers or owner references"]),
        "SRE fields on create": (create(suspended), [
            f"spec.idleTimeout may not be set by {HERMES}"]),
        "client label of another client": (create(mislabelled), [
            "metadata.labels: webordinary.dev/client must be the label value of spec.clientId"]),
        "gateway adds a session": (
            update(old, json_patch(old, environments.session_patch(old, "feedbeef") or []),
                   user=GATEWAY),
            [f"spec.sessions may not be changed by {GATEWAY} (only the wake/activity stamps)"]),
        "gateway creates": (create(hermes_created(), user=GATEWAY), [
            f"{GATEWAY} may not create EditEnvironments"]),
        "a stamp that is not a time": (
            update(old, merge_patch(old, {"metadata": {"annotations": {
                ANNOTATION_WAKE: "$(curl evil)"}}})),
            [f"metadata.annotations: {ANNOTATION_WAKE} must be an RFC 3339 time"]),
    }


@pytest.mark.parametrize("case", sorted(forbidden_cases()))
def test_forbidden_writes_are_refused_with_a_clear_message(case: str) -> None:
    request, expected = forbidden_cases()[case]
    messages = denials(request)
    assert messages, f"{case}: admitted"
    assert not [m for m in messages if "error" in m], messages
    for text in expected:
        assert any(text in m for m in messages), (case, text, messages)


# --- the policy and the operator say the same -----------------------------------------------


@pytest.mark.parametrize("editor", [
    {"image": "evil.example/miner:latest"},
    {"env": [{"name": "npm_config_registry", "value": "http://x"}]},
    {"resources": {"requests": {"nvidia.com/gpu": "1"}}},
    {"resources": {"limits": {"memory": "999Gi"}}},
])
def test_spec_rule_messages_equal_the_operators(editor: dict[str, Any]) -> None:
    old = existing()
    new = merge_patch(old, {"spec": {"editor": editor}})
    spec_policy = next(p for p in chart_policies() if p.name.endswith("editenvironment-spec"))
    (message,) = spec_policy.denials(update(old, new, user=SRE))
    with pytest.raises(specpolicy.PolicyViolation) as caught:
        specpolicy.check_spec(
            EditEnvironmentSpec.model_validate(stored(new)["spec"]),
            "webordinary/editor:0.1.0",
            [ALLOWED_PREFIX + "*"], {"cpu": "4", "memory": "8Gi", "ephemeral-storage": "20Gi"})
    assert message == str(caught.value)


def test_the_policy_is_built_from_the_contracts() -> None:
    text = (CHART / "templates" / "admission-policies.yaml").read_text()
    prefixes = ", ".join(f'"{p}"' for p in specpolicy.RESERVED_ENV_PREFIXES)
    assert f"list {prefixes.replace(', ', ' ')}" in text, "reserved env prefixes differ"
    front = next(p for p in chart_policies() if p.name.endswith("front-door-writes"))
    variables = {v["name"]: v["expression"] for v in front.policy["spec"]["variables"]}
    assert yaml.safe_load(variables["stamps"]) == [ANNOTATION_WAKE, ANNOTATION_ACTIVITY]
    defaults = EditEnvironmentSpec.model_validate({
        "clientId": "a", "projectId": "b", "userId": "c", "repository": {"url": "u"},
    }).model_dump(mode="json", by_alias=True, exclude_none=True)
    # Every spec field Hermes does not write is SRE-owned: a new field must be added here.
    hermes_fields = {"clientId", "projectId", "userId", "repository", "sessions"}
    sre = {k: v for k, v in defaults.items() if k not in hermes_fields}
    assert yaml.safe_load(variables["sreDefaults"]) == sre
    defaulted = stored({"spec": {}})["spec"]
    assert {k: defaulted[k] for k in sre} == sre, "the CRD defaults what SREs own like this"


def test_caps_follow_the_values_and_the_operator_defaults() -> None:
    from webordinary.operator.settings import OperatorSettings

    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["editor"]["maxResources"] == OperatorSettings().editor_max_resources
    spec_policy = next(p for p in chart_policies() if p.name.endswith("editenvironment-spec"))
    caps = next(v["expression"] for v in spec_policy.policy["spec"]["variables"]
                if v["name"] == "caps")
    assert yaml.safe_load(caps) == values["editor"]["maxResources"]


def test_not_rendered_for_kubernetes_1_29_or_when_off() -> None:
    kinds = {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
    assert not [o for o in render(VALUES, kube_version="1.29.0").objects if o["kind"] in kinds]
    assert not [o for o in render({**VALUES, "admissionPolicy": {"enabled": False}},
                                  kube_version="1.33.0").objects if o["kind"] in kinds]
    assert len(chart_policies()) == 3
