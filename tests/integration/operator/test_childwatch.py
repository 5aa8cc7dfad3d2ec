"""The operator's child watches (childwatch, not kopf) over the emulator with a short watch
history: a child's change reaches the observed cache and its environment's status, a partition
longer than the history ends in 410 Gone and a re-list that recovers what was missed (a change
and a deletion), and a deleted child is noticed; a standby watches nothing and resumes from its
last version. Production drift interval (300 s): no drift tick can stand in for a watch here."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import kopf
import pytest
from kopf.testing import KopfRunner

from tests.integration.operator.conftest import (
    Api,
    condition,
    ensure_storage_class,
    is_reconciled,
    operator_settings,
    spec_for,
    wait_for,
)
from tests.plugins.kube import REPO_CRDS
from tests.plugins.tcpproxy import TcpProxy
from webordinary.contracts import naming
from webordinary.devkit.aws import MotoServer
from webordinary.devkit.kubeapi import KubeAPI, start_kube_api
from webordinary.operator import builders
from webordinary.operator.adapters.kube import KubeClient
from webordinary.operator.childwatch import MANAGED, ChildWatch, Watched
from webordinary.operator.handlers import register

NS = "tenants"
HISTORY_SECONDS = 1.0


@pytest.fixture
def short_history() -> Iterator[tuple[KubeAPI, TcpProxy]]:
    """An emulator that forgets watch events after a second, behind a proxy that can cut
    every connection (a partition)."""
    api = start_kube_api([REPO_CRDS], watch_history_seconds=HISTORY_SECONDS)
    proxy = TcpProxy(api.url).start()
    try:
        yield api, proxy
    finally:
        proxy.stop()
        api.stop()


def test_child_watches_feed_the_cache_and_recover_after_410(
        short_history: tuple[KubeAPI, TcpProxy], moto: MotoServer) -> None:
    kube_api, proxy = short_history
    api = Api(kube_api.url)
    api.ensure_namespace(NS)
    ensure_storage_class(api)
    settings = operator_settings(kube_api, moto, kube_api_url=proxy.url,
                                 drift_interval_seconds=300.0,
                                 drift_initial_delay_seconds=300.0)
    registry = kopf.OperatorRegistry()
    rt = register(registry, settings)
    name = "watched"
    pvc = naming.child_name(name, "workspace")
    editor = naming.child_name(name, "editor")  # the Deployment, Service, ServiceAccount...
    core = f"/api/v1/namespaces/{NS}"

    def observed(kind: str, child: str) -> dict[str, Any] | None:
        return rt.observed.get(kind, NS, child)

    with KopfRunner(["run", "--standalone", "-A"], registry=registry, timeout=60) as runner:
        api.create_ee(name, spec_for("watch"), ns=NS)
        wait_for(lambda: is_reconciled(api.ee(name, NS)), 30, "reconciled")
        wait_for(lambda: observed("Deployment", editor), 10, "the Deployment in the cache")
        assert (observed("PersistentVolumeClaim", pvc) or {}).get("status", {}).get(
            "phase") != "Bound"
        wait_for(lambda: all((kind, NS, editor) in rt.child_versions
                             for kind in ("ServiceAccount", "Service", "NetworkPolicy")),
                 10, "the other children's versions")

        # A child's change reaches the cache and its environment's status.
        api.call("PATCH", f"{core}/persistentvolumeclaims/{pvc}/status",
                 {"status": {"phase": "Bound"}}, "application/merge-patch+json")
        wait_for(lambda: (observed("PersistentVolumeClaim", pvc) or {}).get("status", {})
                 .get("phase") == "Bound", 10, "the bound PVC in the cache")
        wait_for(lambda: (condition(api.ee(name, NS), "StorageReady") or {}).get("status")
                 == "True", 10, "StorageReady after the PVC bound")

        # Cut off for longer than the watch history: a change and a deletion are missed.
        gone_before = kube_api.gone_count()
        service_uid = api.get(f"{core}/services/{editor}")["metadata"]["uid"]
        proxy.pause()
        api.call("PATCH", f"/apis/apps/v1/namespaces/{NS}/deployments/{editor}",
                 {"metadata": {"labels": {"example.com/team": "blue"}}},
                 "application/merge-patch+json")
        api.call("DELETE", f"{core}/services/{editor}")
        time.sleep(HISTORY_SECONDS + 0.5)
        proxy.resume()
        wait_for(lambda: ((observed("Deployment", editor) or {}).get("metadata", {})
                          .get("labels") or {}).get("example.com/team") == "blue",
                 20, "the missed label after a re-list")
        assert "example.com/team" in rt.child_versions[("Deployment", NS, editor)]
        # the re-list reports the deletion, and the operator puts the Service back (the drift
        # tick is 300 s away)
        wait_for(lambda: (api.get(f"{core}/services/{editor}") or {}).get("metadata", {})
                 .get("uid") not in (None, service_uid), 10,
                 "the Service deleted during the partition, noticed by the re-list, recreated")
        assert kube_api.gone_count() > gone_before, "the watches resumed into 410 Gone"

        # A deleted child is noticed on a live watch too, and put back.
        pvc_uid = observed("PersistentVolumeClaim", pvc)["metadata"]["uid"]  # type: ignore[index]
        api.call("DELETE", f"{core}/persistentvolumeclaims/{pvc}")
        wait_for(lambda: (observed("PersistentVolumeClaim", pvc) or {}).get("metadata", {})
                 .get("uid") not in (None, pvc_uid), 10,
                 "the deleted PVC recreated, in the cache")
    assert runner.exception is None, runner.output


def test_only_managed_children_are_watched(kube_api: KubeAPI, moto: MotoServer) -> None:
    """The label selector is the server's: a Deployment nobody manages never reaches the
    operator (kopf received every Deployment in scope and filtered its labels itself)."""
    api = Api(kube_api.url)
    api.ensure_namespace(NS)
    settings = operator_settings(kube_api, moto, drift_interval_seconds=300.0,
                                 drift_initial_delay_seconds=300.0)
    registry = kopf.OperatorRegistry()
    rt = register(registry, settings)
    foreign = {"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "foreign", "namespace": NS, "labels": {"app": "x"}},
               "spec": {"selector": {"matchLabels": {"app": "x"}},
                        "template": {"metadata": {"labels": {"app": "x"}},
                                     "spec": {"containers": [{"name": "x", "image": "x"}]}}}}
    with KopfRunner(["run", "--standalone", "-A"], registry=registry, timeout=60) as runner:
        api.call("POST", f"/apis/apps/v1/namespaces/{NS}/deployments", foreign)
        api.create_ee("managed", spec_for("managed"), ns=NS)
        editor = naming.child_name("managed", "editor")
        # (child versions come from the watches only)
        wait_for(lambda: ("Deployment", NS, editor) in rt.child_versions, 30, "the managed one")
        assert not rt.observed.has("Deployment", NS, "foreign")
        assert ("Deployment", NS, "foreign") not in rt.child_versions
    assert runner.exception is None, runner.output


def test_twelve_namespaces_hold_more_watches_than_the_old_connection_limit(
        kube_api: KubeAPI, moto: MotoServer) -> None:
    """Six child watches per namespace each hold a connection: twelve namespaces hold 72, more
    than the 64 the client used to allow, and the reconciles' own requests must still get one."""
    namespaces = [f"team-{i:02d}" for i in range(12)]
    kube_api.create_namespaces(*namespaces)
    ensure_storage_class(Api(kube_api.url))
    api = Api(kube_api.url)
    settings = operator_settings(kube_api, moto, namespaces=namespaces,
                                 drift_interval_seconds=300.0)
    registry = kopf.OperatorRegistry()
    register(registry, settings)
    scope = [arg for ns in namespaces for arg in ("-n", ns)]
    with KopfRunner(["run", "--standalone", *scope], registry=registry, timeout=60) as runner:
        for ns in (namespaces[0], namespaces[-1]):
            api.create_ee("many", spec_for(ns), ns=ns)  # a user each: their own queues
        for ns in (namespaces[0], namespaces[-1]):
            wait_for(lambda n=ns: is_reconciled(api.ee("many", n)), 30, f"reconciled in {ns}")
            pvc = naming.child_name("many", "workspace")
            api.call("PATCH", f"/api/v1/namespaces/{ns}/persistentvolumeclaims/{pvc}/status",
                     {"status": {"phase": "Bound"}}, "application/merge-patch+json")
            wait_for(lambda n=ns: (condition(api.ee("many", n), "StorageReady") or {}).get(
                "status") == "True", 10, f"the bound PVC's watch event in {ns}")
        # The last feeds to start (NetworkPolicies, in the last namespaces) see a deletion too.
        policies = f"/apis/networking.k8s.io/v1/namespaces/{namespaces[-1]}/networkpolicies"
        policy = naming.child_name("many", "editor")
        uid = api.get(f"{policies}/{policy}")["metadata"]["uid"]
        api.call("DELETE", f"{policies}/{policy}")
        wait_for(lambda: (api.get(f"{policies}/{policy}") or {}).get("metadata", {}).get("uid")
                 not in (None, uid), 10, "the NetworkPolicy's deletion seen and put back")
    assert runner.exception is None, runner.output


class Switch:
    """An Activity (standby.Standby's interface) flipped by the test."""

    def __init__(self) -> None:
        self.active = False
        self._changed = asyncio.Event()

    def set(self, active: bool) -> None:
        self.active = active
        self._changed.set()
        self._changed = asyncio.Event()

    async def until(self, active: bool) -> None:
        while self.active != active:
            await self._changed.wait()


async def test_a_standby_watches_nothing_and_resumes_where_it_stopped(
        kube_api: KubeAPI) -> None:
    kube_api.create_namespaces("shop", "elsewhere")
    kube = KubeClient(kopf.ConnectionInfo(server=kube_api.url, insecure=True,
                                          scheme="Bearer", token="dummy"))
    services = Watched(builders.SERVICE, MANAGED)
    seen: list[tuple[str | None, str]] = []
    switch = Switch()
    watch = ChildWatch((services,), ["shop"], lambda: kube,
                       lambda _, event, body: seen.append((event, body["metadata"]["name"])),
                       switch)

    async def create(name: str, ns: str = "shop") -> None:
        await kube.create(builders.SERVICE, ns, {
            "metadata": {"name": name, "labels": dict(MANAGED)},
            "spec": {"ports": [{"port": 80}]}})

    async def until(check: Any) -> None:
        for _ in range(100):
            if check():
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"timed out: {seen}")

    try:
        await create("before")
        watch.start()
        await asyncio.sleep(0.5)
        assert seen == [], "a standby lists and watches nothing"
        assert not watch.synced("Service", "shop")
        switch.set(True)
        await until(lambda: seen == [(None, "before")])
        await until(lambda: watch.synced("Service", "shop"))
        assert not watch.synced("Service", "elsewhere"), "not in its namespaces"
        assert not watch.synced("Pod", "shop"), "not watched"
        await create("live")
        await create("other-namespace", "elsewhere")
        await until(lambda: (("ADDED", "live")) in seen)
        switch.set(False)
        await asyncio.sleep(0.2)
        assert not watch.synced("Service", "shop"), "paused: what it holds goes stale"
        await create("while-paused")
        await kube.delete(builders.SERVICE, "shop", "before")
        await asyncio.sleep(0.3)
        assert ("ADDED", "while-paused") not in seen
        lists = kube_api.request_counts()["LIST"]
        switch.set(True)
        await until(lambda: ("DELETED", "before") in seen)
        assert ("ADDED", "while-paused") in seen
        assert watch.synced("Service", "shop")
        assert kube_api.request_counts()["LIST"] == lists, "resumed from its version"
        assert all(name != "other-namespace" for _, name in seen)
    finally:
        await watch.stop()
        await kube.close()
