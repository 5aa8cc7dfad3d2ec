"""`./dev up` installs the chart's admission policies in the emulator: Hermes and the gateway,
with the clients their settings build, write as their ServiceAccounts and are held to them."""

from __future__ import annotations

from datetime import UTC, datetime

import aiohttp
import pytest

from webordinary.contracts import activity, naming
from webordinary.contracts.environment import Repository
from webordinary.devkit import policies
from webordinary.devkit.kubeapi import KubeAPI
from webordinary.gateway.app import kube_client
from webordinary.hermes import environments
from webordinary.hermes.adapters.kube import EDIT_ENVIRONMENT, KubeEnvironments
from webordinary.hermes.routing import Route
from webordinary.kube import KubeError

NAMESPACE = "webordinary"
NAME = naming.environment_name("demo", "website", "you")
ROUTE = Route(client_id="demo", project_id="website", user_id="you",
              repository=Repository(url="file:///srv/demo.git"), address="website@localhost")


@pytest.mark.asyncio
async def test_local_policies_hold_hermes_and_the_gateway_to_their_writes(
    kube_api: KubeAPI,
) -> None:
    identities, installed = await policies.install(kube_api.url, "webordinary", NAMESPACE, {
        "environments": {"namespace": NAMESPACE}, "aws": {"eksClusterName": "local"},
        "editor": {"podIdentityRoleArn": "arn:aws:iam::000000000000:role/editor"}})
    assert len(installed) == 3, installed
    assert set(identities.users.values()) == {
        "system:serviceaccount:webordinary:webordinary-hermes",
        "system:serviceaccount:webordinary:webordinary-gateway"}
    for token, user in identities.users.items():
        kube_api.add_user(token, user)
    async with aiohttp.ClientSession() as http, http.post(
            f"{kube_api.url}/api/v1/namespaces",
            json={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
    ) as response:
        assert response.status == 201, await response.text()
    hermes = KubeEnvironments.from_settings(kube_api.url, identities.hermes_token)
    gateway = kube_client(kube_api.url, identities.gateway_token)
    try:
        await hermes.create(NAMESPACE, environments.new_environment(NAME, NAMESPACE, ROUTE, "a1"))
        with pytest.raises(KubeError) as image:
            await hermes.merge_patch(NAMESPACE, NAME,
                                     {"spec": {"editor": {"image": "evil.example/miner:1"}}})
        assert image.value.status == 403
        assert "is not an allowed editor image" in image.value.message
        stamped = await hermes.merge_patch(
            NAMESPACE, NAME, activity.activity_patch(datetime.now(UTC)))
        assert activity.ANNOTATION_ACTIVITY in stamped["metadata"]["annotations"]
        with pytest.raises(KubeError) as spec:
            await gateway.merge_patch(EDIT_ENVIRONMENT, NAMESPACE, NAME,
                                      {"spec": {"idleTimeout": "1m"}})
        assert spec.value.status == 403
        assert "webordinary-gateway" in spec.value.message
    finally:
        await hermes.close()
        await gateway.close()
