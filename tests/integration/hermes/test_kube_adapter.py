"""Hermes' Kubernetes adapter against the strict API emulator (real HTTP, the real CRD)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from webordinary.contracts.environment import EditEnvironmentSpec
from webordinary.contracts.environment import Repository as Repo
from webordinary.devkit.kubeapi import KubeAPI
from webordinary.hermes import environments as envs
from webordinary.hermes.adapters.kube import KubeEnvironments
from webordinary.hermes.routing import Route
from webordinary.kube import Client, Config, Conflict, KubeError

NS = "webordinary"
ROUTE = Route(client_id="ameliastamps", project_id="website", user_id="john",
              repository=Repo(url="https://github.com/ameliastamps/website.git"),
              address="website@edit.webordinary.dev")


async def test_create_patch_conflict_and_list(kube_api: KubeAPI) -> None:
    api = KubeEnvironments(Client(Config.from_url(kube_api.url)))
    try:
        assert await api.get(NS, "ameliastamps-website-john") is None
        body = envs.new_environment("ameliastamps-website-john", NS, ROUTE, "0123456789abcdef")
        created = await api.create(NS, body)
        spec = EditEnvironmentSpec.model_validate(created["spec"])  # CRD defaults filled in
        assert spec.sessions == ["0123456789abcdef"]
        with pytest.raises(Conflict):
            await api.create(NS, body)

        stale = created
        patched = await api.json_patch(NS, "ameliastamps-website-john",
                                       envs.session_patch(created, "fedcba9876543210") or [])
        assert envs.sessions_of(patched) == ["0123456789abcdef", "fedcba9876543210"]
        with pytest.raises(Conflict):  # the resourceVersion test of a stale read fails
            await api.json_patch(NS, "ameliastamps-website-john",
                                 envs.session_patch(stale, "aaaaaaaaaaaaaaaa") or [])

        woke = await api.merge_patch(NS, "ameliastamps-website-john",
                                     envs.wake_patch(datetime(2026, 11, 28, tzinfo=UTC)))
        assert woke["metadata"]["annotations"]
        assert [o["metadata"]["name"] for o in await api.list(NS)] == ["ameliastamps-website-john"]

        with pytest.raises(KubeError) as info:  # the CRD schema is enforced (422)
            await api.json_patch(NS, "ameliastamps-website-john",
                                 [{"op": "add", "path": "/spec/sessions/-", "value": "Not Valid"}])
        assert info.value.status == 422
    finally:
        await api.close()


async def test_list_reads_every_page(kube_api: KubeAPI) -> None:
    api = KubeEnvironments(Client(Config.from_url(kube_api.url)), page=2)
    try:
        names = []
        for user in ("a", "b", "c", "d", "e"):
            route = Route(client_id="ameliastamps", project_id="website", user_id=user,
                          repository=Repo(url="https://github.com/ameliastamps/website.git"),
                          address="website@edit.webordinary.dev")
            name = f"ameliastamps-website-{user}"
            await api.create(NS, envs.new_environment(name, NS, route, "0123456789abcdef"))
            names.append(name)
        assert sorted(o["metadata"]["name"] for o in await api.list(NS)) == names
        assert kube_api.request_counts()["LIST"] == 3, "five environments in pages of two"
    finally:
        await api.close()
