"""The shared Kubernetes client against the strict API emulator (real HTTP, the real CRD)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from tests.plugins.kube import REPO_CRDS
from webordinary.contracts.environment import API_VERSION, KIND, PLURAL
from webordinary.devkit.kubeapi import KubeAPI, start_kube_api
from webordinary.kube import Client, Config, Conflict, KubeError, Resource
from webordinary.kube.watch import Feed, follow

NS = "tenants"
CONFIG_MAP = Resource("v1", "ConfigMap", "configmaps")
EDIT_ENVIRONMENT = Resource(API_VERSION, KIND, PLURAL)


def environment(name: str) -> dict[str, object]:
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name},
            "spec": {"clientId": "amelia", "projectId": "site", "userId": "john",
                     "repository": {"url": "https://github.com/amelia/site.git"}}}


async def test_the_next_call_uses_the_rotated_token(kube_api: KubeAPI, tmp_path: Path) -> None:
    """The kubelet rewrites the projected token; the API server refuses the old one at once."""
    kube_api.create_namespaces(NS)
    token = tmp_path / "token"
    token.write_text("token-1\n")
    kube_api.accept_tokens({"token-1"})
    client = Client(Config(server=kube_api.url, token_file=token))
    try:
        assert await client.get(CONFIG_MAP, NS, "nothing") is None
        token.write_text("token-2\n")
        os.utime(token, ns=(1, 2))  # a new mtime even within the same clock tick
        kube_api.accept_tokens({"token-2"})
        assert await client.get(CONFIG_MAP, NS, "nothing") is None
        kube_api.accept_tokens({"token-3"})
        with pytest.raises(KubeError) as refused:
            await client.get(CONFIG_MAP, NS, "nothing")
        assert (refused.value.status, refused.value.transient) == (401, False)
    finally:
        await client.close()


async def test_a_401_reads_the_token_file_again(kube_api: KubeAPI, tmp_path: Path) -> None:
    """A rotation the file's stat does not show (same size, mtime put back) is caught by the
    401: the client reads the file again and retries once."""
    kube_api.create_namespaces(NS)
    token = tmp_path / "token"
    token.write_text("token-a")
    before = token.stat()
    kube_api.accept_tokens({"token-a"})
    client = Client(Config(server=kube_api.url, token_file=token))
    try:
        assert await client.list(CONFIG_MAP, NS) == []
        token.write_text("token-b")
        os.utime(token, ns=(before.st_atime_ns, before.st_mtime_ns))
        kube_api.accept_tokens({"token-b"})
        assert await client.list(CONFIG_MAP, NS) == []
    finally:
        await client.close()


async def test_verbs_on_built_ins_and_custom_resources(kube_api: KubeAPI) -> None:
    kube_api.create_namespaces(NS)
    client = Client(Config.from_url(kube_api.url))
    try:
        assert await client.get(EDIT_ENVIRONMENT, NS, "amelia-site-john") is None
        created = await client.create(EDIT_ENVIRONMENT, NS, environment("amelia-site-john"))
        assert created["metadata"]["uid"]
        with pytest.raises(Conflict) as exists:
            await client.create(EDIT_ENVIRONMENT, NS, environment("amelia-site-john"))
        assert (exists.value.status, exists.value.reason, exists.value.transient) == (
            409, "AlreadyExists", True)

        # merge patch of a custom resource (kubernetes-asyncio sends a dict as a JSON patch)
        merged = await client.patch(EDIT_ENVIRONMENT, NS, "amelia-site-john",
                                    {"metadata": {"annotations": {"a": "1"}}})
        assert merged["metadata"]["annotations"]["a"] == "1"
        # JSON patch guarded by the resourceVersion read: a stale one fails its test
        guard = {"op": "test", "path": "/metadata/resourceVersion",
                 "value": created["metadata"]["resourceVersion"]}
        with pytest.raises(Conflict) as stale:
            await client.json_patch(EDIT_ENVIRONMENT, NS, "amelia-site-john", [
                guard, {"op": "add", "path": "/spec/sessions", "value": []}])
        assert stale.value.status == 422
        guard["value"] = merged["metadata"]["resourceVersion"]
        patched = await client.json_patch(EDIT_ENVIRONMENT, NS, "amelia-site-john", [
            guard, {"op": "add", "path": "/spec/sessions", "value": ["0123456789abcdef"]}])
        assert patched["spec"]["sessions"] == ["0123456789abcdef"]
        with pytest.raises(KubeError) as invalid:  # the CRD schema is enforced
            await client.json_patch(EDIT_ENVIRONMENT, NS, "amelia-site-john", [
                {"op": "add", "path": "/spec/sessions/-", "value": "Not Valid"}])
        assert (invalid.value.status, invalid.value.transient) == (422, False)
        assert not isinstance(invalid.value, Conflict)

        status = await client.patch(EDIT_ENVIRONMENT, NS, "amelia-site-john",
                                    {"status": {"phase": "Pending"}}, subresource="status")
        assert status["status"]["phase"] == "Pending"
        ignored = await client.patch(EDIT_ENVIRONMENT, NS, "amelia-site-john",
                                     {"status": {"phase": "Ready"}})
        assert ignored["status"]["phase"] == "Pending", "status only through its subresource"

        for n in range(5):
            await client.create(CONFIG_MAP, NS, {"metadata": {
                "name": f"cm-{n}", "labels": {"odd": str(n % 2)}}, "data": {"n": str(n)}})
        items, version = await client.list_all(client.path(CONFIG_MAP, NS), page=2)
        assert [i["metadata"]["name"] for i in items] == [f"cm-{n}" for n in range(5)]
        assert version
        odd = await client.list(CONFIG_MAP, NS, "odd=1")
        assert [i["metadata"]["name"] for i in odd] == ["cm-1", "cm-3"]
        everywhere = await client.list(CONFIG_MAP, None, "odd=1")
        assert len(everywhere) == 2

        assert await client.delete(EDIT_ENVIRONMENT, NS, "amelia-site-john") is True
        assert await client.delete(EDIT_ENVIRONMENT, NS, "amelia-site-john") is False
        with pytest.raises(KubeError) as missing:  # a write to something missing is an error
            await client.patch(CONFIG_MAP, NS, "cm-9", {"data": {"n": "9"}})
        assert missing.value.status == 404
        with pytest.raises(KubeError) as nowhere:  # as is a namespace that does not exist
            await client.create(CONFIG_MAP, "nowhere", {"metadata": {"name": "cm"}})
        assert nowhere.value.status == 404
    finally:
        await client.close()


async def test_an_unreachable_server_is_a_transient_kube_error() -> None:
    client = Client(Config.from_url("http://127.0.0.1:9"))
    try:
        with pytest.raises(KubeError) as caught:
            await client.get(CONFIG_MAP, NS, "x")
        assert (caught.value.status, caught.value.reason, caught.value.transient) == (
            0, "Unreachable", True)
    finally:
        await client.close()
    with pytest.raises(KubeError, match="closed"):
        await client.get(CONFIG_MAP, NS, "x")


async def test_watch_resumes_from_its_version_and_lists_again_after_410() -> None:
    api = start_kube_api([REPO_CRDS], watch_history_seconds=1.0)
    api.create_namespaces(NS)
    client = Client(Config.from_url(api.url))
    path = client.path(CONFIG_MAP, NS)
    try:
        _, version = await client.list_all(path)
        await client.create(CONFIG_MAP, NS, {"metadata": {"name": "one"}})
        events = [e async for e in client.watch(path, {}, version, timeout_seconds=1)]
        assert [(e["type"], e["object"]["metadata"]["name"]) for e in events
                if e["type"] != "BOOKMARK"] == [("ADDED", "one")]

        await asyncio.sleep(1.5)
        await client.create(CONFIG_MAP, NS, {"metadata": {"name": "two"}})
        await asyncio.sleep(1.5)  # `version` has left the history window
        with pytest.raises(KubeError) as gone:
            async for _ in client.watch(path, {}, version, timeout_seconds=1):
                pass
        assert gone.value.status == 410

        seen: dict[str, Any] = {"stale": {}}

        def replace(items: list[Any]) -> None:
            seen.clear()
            seen.update({i["metadata"]["name"]: i for i in items})

        ready = asyncio.Event()
        feed = Feed(path, {}, replace=replace,
                    upsert=lambda o: seen.update({o["metadata"]["name"]: o}),
                    delete=lambda o: seen.pop(o["metadata"]["name"]), synced=lambda: None)
        task = asyncio.create_task(follow(client, feed, ready))
        await asyncio.wait_for(ready.wait(), 10)
        assert sorted(seen) == ["one", "two"], "a list replaces what was there"
        await client.delete(CONFIG_MAP, NS, "one")
        await client.create(CONFIG_MAP, NS, {"metadata": {"name": "three"}})
        for _ in range(100):
            if sorted(seen) == ["three", "two"]:
                break
            await asyncio.sleep(0.05)
        assert sorted(seen) == ["three", "two"]
        task.cancel()
    finally:
        await client.close()
        api.stop()
