"""Hermes' ServiceAccount against the API server with the chart's admission policies installed
(the emulator evaluates ValidatingAdmissionPolicies like a real server): its real writes go
through, the writes a compromised Hermes would try are refused with the policy's message."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from tests.unit.helm.chart_render import NAMESPACE, fullname, render
from webordinary.contracts import activity, naming
from webordinary.contracts.environment import (
    ANNOTATION_RELEASE_FINALIZER,
    LABEL_CLIENT,
    Repository,
    SecretKeyRef,
)
from webordinary.devkit.kubeapi import KubeAPI
from webordinary.hermes import environments
from webordinary.hermes.adapters.kube import KubeEnvironments
from webordinary.hermes.routing import Route
from webordinary.kube import Client, Config, KubeError

TENANTS = "tenants"
HERMES_TOKEN = "hermes-token"
SRE_TOKEN = "sre-token"
EE = f"/apis/webordinary.dev/v1alpha1/namespaces/{TENANTS}/editenvironments"
NOW = datetime(2026, 11, 28, 20, 0, tzinfo=UTC)


def post(api: KubeAPI, path: str, body: dict[str, Any], token: str = SRE_TOKEN) -> Any:
    response = requests.post(api.url + path, json=body, timeout=10,
                             headers={"Authorization": f"Bearer {token}"})
    assert response.status_code in (200, 201), response.text
    return response.json()


@pytest.fixture
def cluster(kube_api: KubeAPI) -> KubeAPI:
    """The emulator with the chart's policies (rendered for 1.33), the tenants namespace,
    a labelled git Secret and an unlabelled platform Secret."""
    kube_api.add_user(HERMES_TOKEN, f"system:serviceaccount:{NAMESPACE}:{fullname('hermes')}")
    kube_api.add_user(SRE_TOKEN, "sre@example.com")
    post(kube_api, "/api/v1/namespaces",
         {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": TENANTS}})
    for name, labels in (("ameliastamps-git", {LABEL_CLIENT: "ameliastamps"}),
                         ("anthropic-api-key", {})):
        post(kube_api, f"/api/v1/namespaces/{TENANTS}/secrets",
             {"apiVersion": "v1", "kind": "Secret",
              "metadata": {"name": name, "labels": labels}, "stringData": {"token": "x"}})
    rendered = render({"environments": {"namespace": TENANTS}}, kube_version="1.33.0")
    plurals = {"ValidatingAdmissionPolicy": "validatingadmissionpolicies",
               "ValidatingAdmissionPolicyBinding": "validatingadmissionpolicybindings"}
    for obj in rendered.objects:
        if obj["kind"] in plurals:
            post(kube_api, f"/apis/admissionregistration.k8s.io/v1/{plurals[obj['kind']]}", obj)
    return kube_api


@pytest.fixture
async def hermes(cluster: KubeAPI) -> AsyncIterator[KubeEnvironments]:
    client = KubeEnvironments(Client(Config.from_url(cluster.url, token=HERMES_TOKEN)))
    yield client
    await client.close()


def route(secret: str) -> Route:
    return Route(client_id="ameliastamps", project_id="website", user_id="john",
                 repository=Repository(url="https://github.com/ameliastamps/website.git",
                                       credentials_secret_ref=SecretKeyRef(name=secret)),
                 address="website@edit.webordinary.dev")


NAME = naming.environment_name("ameliastamps", "website", "john")


async def test_hermes_real_writes_are_admitted(hermes: KubeEnvironments) -> None:
    created = await hermes.create(
        TENANTS, environments.new_environment(NAME, TENANTS, route("ameliastamps-git"), "a1"))
    ops = environments.session_patch(created, "b2")
    assert ops is not None
    patched = await hermes.json_patch(TENANTS, NAME, ops)
    assert patched["spec"]["sessions"] == ["a1", "b2"]
    await hermes.merge_patch(TENANTS, NAME, activity.wake_patch(NOW))
    stamped = await hermes.merge_patch(TENANTS, NAME, activity.activity_patch(NOW))
    assert set(stamped["metadata"]["annotations"]) == {
        activity.ANNOTATION_WAKE, activity.ANNOTATION_ACTIVITY}


async def test_forbidden_writes_are_refused_by_the_api_server(
    cluster: KubeAPI, hermes: KubeEnvironments
) -> None:
    with pytest.raises(KubeError) as foreign:
        await hermes.create(TENANTS, environments.new_environment(
            NAME, TENANTS, route("anthropic-api-key"), "a1"))
    assert foreign.value.status == 403
    assert ("denied request: spec.repository.credentialsSecretRef: Secret anthropic-api-key "
            "is not labelled webordinary.dev/client=ameliastamps") in foreign.value.message

    await hermes.create(TENANTS, environments.new_environment(
        NAME, TENANTS, route("ameliastamps-git"), "a1"))
    refused = {
        "image": ({"spec": {"editor": {"image": "evil.example/miner:1"}}},
                  "spec.editor.image: evil.example/miner:1 is not an allowed editor image"),
        "env": ({"spec": {"editor": {"env": [{"name": "NODE_OPTIONS", "value": "-r /x"}]}}},
                "spec.editor.env: NODE_OPTIONS reserved"),
        "999Gi": ({"spec": {"editor": {"resources": {"limits": {"memory": "999Gi"}}}}},
                  "spec.editor.resources.limits: memory=999Gi above the cap"),
        "finalizer": ({"metadata": {"annotations": {ANNOTATION_RELEASE_FINALIZER: "true"}}},
                      f"{ANNOTATION_RELEASE_FINALIZER} may not be written"),
    }
    for case, (patch, text) in refused.items():
        with pytest.raises(KubeError) as caught:
            await hermes.merge_patch(TENANTS, NAME, patch)
        assert caught.value.status == 403, case
        assert text in caught.value.message, (case, caught.value.message)

    status = await raw(cluster, "PATCH", f"{EE}/{NAME}/status", HERMES_TOKEN,
                       {"status": {"phase": "Ready"}})
    assert status.status_code == 403
    assert "may not write editenvironments/status" in status.json()["message"]
    delete = await raw(cluster, "DELETE", f"{EE}/{NAME}", HERMES_TOKEN)
    assert delete.status_code == 403
    assert "may not delete EditEnvironments" in delete.json()["message"]

    # Nothing of it was stored; an SRE may still change what SREs own.
    stored = (await raw(cluster, "GET", f"{EE}/{NAME}", SRE_TOKEN)).json()
    assert stored["spec"]["editor"] == {"env": []}
    sre = await raw(cluster, "PATCH", f"{EE}/{NAME}", SRE_TOKEN, {"spec": {"idleTimeout": "1h"}})
    assert sre.status_code == 200, sre.text


async def raw(api: KubeAPI, method: str, path: str, token: str,
              patch: dict[str, Any] | None = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}",
               "Content-Type": "application/merge-patch+json"}
    data = None if patch is None else json.dumps(patch)
    return await asyncio.to_thread(requests.request, method, api.url + path, data=data,
                                   headers=headers, timeout=10)
