"""Wake on visit through the whole chain, nothing published by the test: the real gateway
(process), the real operator (kopf, production drift interval: 300 s, so no tick helps), the
devkit kubelet (starts the editor pod, reports it, writes its EndpointSlice) and the pod's
real preview container (the supervisor and `astro dev` over the session's worktree).

Only the editor container is a pause-like stand-in: the queue worker and Claude Code are not
on a preview's path. The environment falls asleep by itself (idle timeout), a browser's visit
gets the starting page, the gateway writes one wake request, and the site is served once the
pod is ready.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.gateway.harness import Gateway, make_keys, token
from tests.integration.operator.conftest import (
    NAMESPACE,
    Harness,
    ensure_storage_class,
    make_harness,
    spec_for,
    wait_for,
)
from tests.plugins.astro_site import make_astro_workspace
from tests.plugins.kubelet import kubelet_running
from webordinary.contracts.environment import ANNOTATION_WAKE
from webordinary.contracts.links import COOKIE_NAME
from webordinary.contracts.naming import child_name
from webordinary.devkit import containers, endpoints
from webordinary.devkit.aws import MotoServer
from webordinary.devkit.kubeapi import KubeAPI
from webordinary.devkit.kubelet import LocalKubelet

PRODUCTION = {"drift_interval_seconds": 300.0, "drift_initial_delay_seconds": None}
NAME, THREAD = "ameliastamps-website-wake", "c0ffee0c0ffee000"
IDLE = 25  # seconds: long enough for a pod start on a loaded machine, short enough to wait
BROWSER = {"Accept": "text/html,application/xhtml+xml"}
DEPLOYMENT = child_name(NAME, "editor")
CLAIM = child_name(NAME, "workspace")
EDITOR_UID = 1000  # the operator's default editor_run_as_user


def own(path: Path, uid: int, gid: int) -> None:
    """What the editor leaves on its volume: its files, the pod's volume group may write."""
    for folder, dirs, files in os.walk(path):
        os.chown(folder, uid, gid)
        os.chmod(folder, 0o2770)
        for name in files:
            file = Path(folder, name)
            os.chown(file, uid, gid)
            file.chmod(file.stat().st_mode | 0o060)
        dirs[:] = [d for d in dirs if d != ".git"]


def prepare_workspace(root: Path) -> None:
    """The workspace volume as an editor leaves it after a first edit: the repository, the
    session's worktree and node_modules under `sessions/`."""
    volume = root / "volumes" / NAMESPACE / CLAIM
    gid = containers.volume_gid("pvc", f"{NAMESPACE}/{CLAIM}") if containers.isolating() else None
    containers.prepare_volume(volume, gid)
    sessions = make_astro_workspace(volume, [THREAD])
    if gid is not None:
        uid = containers.uid_offset(f"{NAMESPACE}/{DEPLOYMENT}") + EDITOR_UID
        own(sessions / f"thread-{THREAD}", uid, gid)
        for folder in (sessions, sessions / "node_modules"):
            os.chown(folder, uid, gid)
            folder.chmod(0o2770)


@pytest.fixture
def harness(kube_api: KubeAPI, moto: MotoServer) -> Harness:
    return make_harness(kube_api, moto)


def slice_of(harness: Harness) -> dict[str, Any] | None:
    items = harness.api.get("/apis/discovery.k8s.io/v1/namespaces/"
                            f"{NAMESPACE}/endpointslices")["items"]
    return next((s for s in items if s["metadata"]["labels"].get(
        "kubernetes.io/service-name") == DEPLOYMENT), None)


def serving(found: dict[str, Any] | None) -> bool:
    return bool(found and any((e.get("conditions") or {}).get("ready")
                              for e in found.get("endpoints") or []))


def replicas(harness: Harness) -> int | None:
    found = harness.api.child("/apis/apps/v1", "deployments", DEPLOYMENT)
    return None if found is None else int(found["spec"]["replicas"])


@pytest.mark.slow
async def test_a_visit_wakes_a_sleeping_environment_through_the_real_chain(
        harness: Harness, tmp_path: Path) -> None:
    prepare_workspace(tmp_path / "node")
    ensure_storage_class(harness.api)
    keys = make_keys(tmp_path / "keys")
    kubelet = LocalKubelet(harness.kube_api.url, tmp_path / "node", extra_env={
        "WEBORDINARY_EDITOR_PREVIEW_HOST": "127.0.0.1", "WEBORDINARY_PREVIEW_HOST": "127.0.0.1",
        "WEBORDINARY_CREDENTIALS_METRICS_HOST": "127.0.0.1",
    }, commands={"editor": [sys.executable, "-m", "webordinary.devkit.pause"]})
    gateway = Gateway(harness.kube_api.url, tmp_path / "keys", tmp_path / "gateway.log")
    timings: list[str] = []
    try:
        with kubelet_running(kubelet), harness.run_operator(**PRODUCTION) as runner:
            gateway.start()
            try:
                await gateway.ready()
                created = time.monotonic()
                harness.api.create_ee(NAME, spec_for("wake", idleTimeout=f"{IDLE}s",
                                                     sessions=[THREAD]))
                # Awake after creation: the kubelet starts the pod; then idle puts it to sleep.
                wait_for(lambda: f"{NAMESPACE}/{DEPLOYMENT}" in kubelet.pods, timeout=IDLE,
                         what="first start")
                deployment = harness.api.child("/apis/apps/v1", "deployments", DEPLOYMENT)
                assert deployment["spec"]["template"]["spec"]["volumes"][0][
                    "persistentVolumeClaim"]["claimName"] == CLAIM
                await asyncio.to_thread(wait_for, lambda: replicas(harness) == 0, IDLE + 15,
                                        "asleep after the idle timeout")
                await asyncio.to_thread(wait_for, lambda: not serving(slice_of(harness))
                                        and f"{NAMESPACE}/{DEPLOYMENT}" not in kubelet.pods,
                                        30, "the pod stopped")
                timings.append(f"asleep {time.monotonic() - created:.1f} s after creation")
                ee = harness.api.ee(NAME) or {}
                assert ee["status"]["phase"] == "Sleeping"
                assert ANNOTATION_WAKE not in (ee["metadata"].get("annotations") or {})
                await _visit_until_served(harness, gateway, keys, kubelet, timings)
            finally:
                gateway.stop()
    finally:
        print("\n".join(timings))  # KopfRunner holds stdout until here
    assert runner.exception is None, runner.stdout


async def _visit_until_served(harness: Harness, gateway: Gateway, keys: Any,
                              kubelet: LocalKubelet, timings: list[str]) -> None:
    url = f"{gateway.url}/session/{THREAD}/"
    cookie = {"Cookie": f"{COOKIE_NAME}={token(keys, THREAD)}"}
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as client:
        async def visit(headers: dict[str, str]) -> tuple[int, str, str | None]:
            async with client.get(url, headers={**cookie, **headers}) as response:
                return response.status, await response.text(), response.headers.get(
                    "Retry-After")

        began = time.monotonic()
        visits = await asyncio.gather(*(visit(BROWSER) for _ in range(20)), visit({}))
        for status, text, retry in visits[:-1]:
            assert (status, "Starting your preview" in text) == (503, True), text[:300]
            assert retry is not None
            assert '<meta http-equiv="refresh"' in text
        status, text, retry = visits[-1]
        assert (status, retry is not None, "<html" in text) == (503, True, False)
        # One wake request however many visitors: the gateway's, and nobody else's.
        woken = wait_for(lambda: ((harness.api.ee(NAME) or {})["metadata"].get("annotations")
                                  or {}).get(ANNOTATION_WAKE), timeout=5, what="wake")
        await asyncio.to_thread(wait_for, lambda: replicas(harness) == 1, 5, "scaled up")
        timings.append(f"scaled up {time.monotonic() - began:.1f} s after the first visit")
        assert await gateway.metric("webordinary_gateway_wake_requests_total") == 1
        # A browser reloads the starting page until the site itself answers.
        deadline, page = time.monotonic() + 90, ""
        while time.monotonic() < deadline:
            status, page, _ = await visit(BROWSER)
            if status != 503 or "Starting your preview" not in page:
                timings.append(f"{time.monotonic() - began:.1f} s: {status} {page[:60]!r}")
            if status == 200:
                break
            await asyncio.sleep(1.0)
        served = time.monotonic() - began
        assert "Welcome to Amelia&#39;s Stamps" in page or "Welcome to Amelia's Stamps" in page, (
            page[:500], _logs(kubelet))
        assert f"/session/{THREAD}/@vite/client" in page, "served by astro dev, via the pod"
        ee = harness.api.ee(NAME) or {}
        assert ee["metadata"]["annotations"][ANNOTATION_WAKE] == woken, "one wake write"
    # Every link was real: the kubelet's pod and EndpointSlice, its port, the wake metric.
    pod = kubelet.pods[f"{NAMESPACE}/{DEPLOYMENT}"]
    found = slice_of(harness)
    assert found is not None
    assert found["metadata"]["labels"][endpoints.MANAGED_BY_LABEL] == endpoints.MANAGED_BY
    assert serving(found)
    assert {p["name"]: p["port"] for p in found["ports"]}["preview"] == pod.preview_port
    assert set(pod.sidecars) == {"preview", "credentials"}
    pods = harness.api.get(f"/api/v1/namespaces/{NAMESPACE}/pods")["items"]
    assert [p["metadata"]["name"] for p in pods] == [pod.name]
    assert await gateway.metric("webordinary_gateway_wake_on_visit_seconds_count") == 1
    timings.append(f"first visit -> the site served through the chain: {served:.1f} s")


def _logs(kubelet: LocalKubelet) -> str:
    logs = kubelet.root / "logs"
    return "\n".join(p.read_text()[-2000:] for p in logs.glob("*.log")) if logs.is_dir() else ""
