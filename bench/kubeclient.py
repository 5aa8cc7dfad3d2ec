"""The shared Kubernetes client (webordinary.kube) against kubernetes-asyncio, on the paths the
operator, Hermes and the gateway use, to back the choice in docs/design.md.

Run: `./dev bench kubeclient [--n 5000]`. Client CPU is the calling thread's CPU time (the
emulator runs in its own thread) and import cost is process CPU time in a fresh interpreter, so
the figures hold under load. kubernetes-asyncio is a dev-only dependency.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse
import asyncio
import gc
import importlib.metadata
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import certifi
import kubernetes_asyncio.client as kac
from kubernetes_asyncio.config.incluster_config import InClusterConfigLoader

from tests.plugins.kube import REPO_CRDS
from webordinary.contracts.environment import API_VERSION, GROUP, KIND, PLURAL, VERSION
from webordinary.devkit.kubeapi import start_kube_api
from webordinary.kube import Client, Config, KubeError, Resource

NS = "tenants"
EE = Resource(API_VERSION, KIND, PLURAL)
CM = Resource("v1", "ConfigMap", "configmaps")
DEPLOYMENT = Resource("apps/v1", "Deployment", "deployments")


def environment(i: int) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": f"c{i}-site-user"},
            "spec": {"clientId": f"c{i}", "projectId": "site", "userId": "user",
                     "repository": {"url": "https://example.com/repo.git"}}}


def deployment() -> dict[str, Any]:
    labels = {"app": "editor"}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "editor"},
            "spec": {"replicas": 0, "selector": {"matchLabels": labels}, "template": {
                "metadata": {"labels": labels}, "spec": {"containers": [
                    {"name": c, "image": "webordinary/editor:1", "env": [
                        {"name": f"V{i}", "value": "x"} for i in range(12)],
                     "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}
                    for c in ("editor", "preview", "credentials")]}}}}


def import_cost(module: str) -> tuple[float, float]:
    """Median CPU ms to import `module` in a fresh interpreter, and its RSS then in MiB."""
    probe = ("import time; t = time.process_time(); "
             f"import {module}; d = time.process_time() - t; "
             "rss = [l for l in open('/proc/self/status') if l.startswith('VmRSS')][0]; "
             "print(d * 1000, int(rss.split()[1]) / 1024)")
    runs = [subprocess.run([sys.executable, "-P", "-c", probe], capture_output=True, text=True,
                           check=True).stdout.split() for _ in range(5)]
    return (statistics.median(float(r[0]) for r in runs),
            statistics.median(float(r[1]) for r in runs))


def installed_mb(names: list[str]) -> float:
    total = 0
    for name in names:
        for file in importlib.metadata.distribution(name).files or []:
            path = file.locate()
            if path.is_file():
                total += path.stat().st_size
    return total / 1e6


def source_mb() -> float:
    root = Path(__file__).resolve().parents[1] / "kube" / "webordinary"
    return sum(p.stat().st_size for p in root.rglob("*.py")) / 1e6


async def cpu(repeat: int, call: Callable[[], Awaitable[Any]]) -> float:
    """Median CPU ms of the calling thread per call (the emulator has its own thread)."""
    gc.collect()
    spent = []
    for _ in range(repeat):
        start = time.thread_time()
        await call()
        spent.append(time.thread_time() - start)
    return statistics.median(spent) * 1000


async def measure(n: int) -> list[tuple[str, str, str]]:
    api = start_kube_api([REPO_CRDS])
    api.create_namespaces(NS)
    ours = Client(Config.from_url(api.url))
    config = kac.Configuration(host=api.url)
    theirs = kac.ApiClient(config)
    custom, core, apps = kac.CustomObjectsApi(theirs), kac.CoreV1Api(theirs), kac.AppsV1Api(theirs)
    rows: list[tuple[str, str, str]] = []
    try:
        print(f"creating {n} EditEnvironments and {n} ConfigMaps ...", flush=True)
        sem = asyncio.Semaphore(32)

        async def make(kind: Resource, body: dict[str, Any]) -> None:
            async with sem:
                await ours.create(kind, NS, body)

        await asyncio.gather(*(make(EE, environment(i)) for i in range(n)))
        await asyncio.gather(*(make(CM, {"metadata": {"name": f"cm{i}"}, "data": {"k": "v" * 64}})
                               for i in range(n)))
        await ours.create(DEPLOYMENT, NS, deployment())

        async def ours_list_ee() -> None:
            items, _ = await ours.list_all(ours.path(EE, NS))
            assert len(items) == n

        async def theirs_list_ee() -> None:
            items: list[Any] = []
            token = None
            while True:
                page = await custom.list_namespaced_custom_object(
                    GROUP, VERSION, NS, PLURAL, limit=500, _continue=token)
                items += page["items"]
                token = page["metadata"].get("continue")
                if not token:
                    break
            assert len(items) == n

        async def ours_list_cm() -> None:
            items, _ = await ours.list_all(ours.path(CM, NS))
            assert len(items) == n

        async def theirs_list_cm() -> None:
            count, token = 0, None
            while True:
                page = await core.list_namespaced_config_map(NS, limit=500, _continue=token)
                count += len(page.items)
                token = page.metadata._continue
                if not token:
                    break
            assert count == n

        patch = {"metadata": {"annotations": {"webordinary.dev/last-activity": "x"}}}
        name = "c0-site-user"
        for label, a, b, repeat in (
            (f"list {n} EditEnvironments (ms CPU)", ours_list_ee, theirs_list_ee, 5),
            (f"list {n} ConfigMaps (ms CPU)", ours_list_cm, theirs_list_cm, 5),
            ("get a Deployment (ms CPU)", lambda: ours.get(DEPLOYMENT, NS, "editor"),
             lambda: apps.read_namespaced_deployment("editor", NS), 300),
            ("merge-patch an EditEnvironment (ms CPU)",
             lambda: ours.patch(EE, NS, name, patch),
             lambda: custom.patch_namespaced_custom_object(
                 GROUP, VERSION, NS, PLURAL, name, patch,
                 _content_type="application/merge-patch+json"), 300),
            ("patch status of an EditEnvironment (ms CPU)",
             lambda: ours.patch(EE, NS, name, {"status": {"phase": "Ready"}},
                                subresource="status"),
             lambda: custom.patch_namespaced_custom_object_status(
                 GROUP, VERSION, NS, PLURAL, name, {"status": {"phase": "Ready"}},
                 _content_type="application/merge-patch+json"), 300),
        ):
            await b()  # warm both (connections, lazy imports)
            await a()
            rows.append((label, f"{await cpu(repeat, a):.2f}", f"{await cpu(repeat, b):.2f}"))
            print(f"  {rows[-1]}", flush=True)

        # merge patch of a custom resource without naming the content type
        try:
            await custom.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, name, patch)
            default = "merge patch"
        except kac.ApiException as error:
            default = f"sent as JSON patch: {error.status} {error.reason}"
        rows.append(("dict patch of a custom resource, default content type", "merge patch",
                     default))

        rows.append(("next call after the token file rotates", *await rotation(api.url, api)))
    finally:
        await ours.close()
        await theirs.close()
        api.stop()
    return rows


async def rotation(url: str, api: Any) -> tuple[str, str]:
    """Rotate the projected token file; the server accepts only the new token."""
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        token = Path(tmp) / "token"
        token.write_text("token-1")
        ca = certifi.where()  # any CA bundle: the emulator speaks plain http
        api.accept_tokens({"token-1"})
        ours = Client(Config(server=url, token_file=token))
        config = kac.Configuration()
        InClusterConfigLoader(str(token), str(ca), environ={
            "KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": "1"},
        ).load_and_set(config)
        config.host = url
        theirs = kac.ApiClient(config)
        core = kac.CoreV1Api(theirs)
        try:
            await ours.list(CM, NS, "x=y")
            await core.list_namespaced_config_map(NS, label_selector="x=y")
            token.write_text("token-2")
            os.utime(token, ns=(1, 2))
            api.accept_tokens({"token-2"})
            try:
                await ours.list(CM, NS, "x=y")
                results.append("200 (new token)")
            except KubeError as error:
                results.append(f"{error.status}")
            try:
                await core.list_namespaced_config_map(NS, label_selector="x=y")
                results.append("200 (new token)")
            except kac.ApiException as error:
                results.append(f"{error.status} for up to 60 s (re-reads once a minute)")
        finally:
            await ours.close()
            await theirs.close()
            api.accept_tokens(None)
    return results[0], results[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=5000, help="objects in each list")
    args = parser.parse_args()
    print(f"load average: {os.getloadavg()[0]:.1f}", flush=True)
    _, base_rss = import_cost("sys")
    rows: list[tuple[str, str, str]] = []
    for label, ours_mod, theirs_mod in (
        ("import (ms CPU, median of 5)", "webordinary.kube", "kubernetes_asyncio.client"),
    ):
        a, b = import_cost(ours_mod), import_cost(theirs_mod)
        rows.append((label, f"{a[0]:.0f}", f"{b[0]:.0f}"))
        rows.append((f"RSS after import (MiB; bare python {base_rss:.0f})", f"{a[1]:.1f}",
                     f"{b[1]:.1f}"))
    aiohttp_ms, aiohttp_rss = import_cost("aiohttp")
    rows.append(("  aiohttp alone (kopf imports it anyway): ms, MiB", f"{aiohttp_ms:.0f}",
                 f"{aiohttp_rss:.1f}"))
    rows.append(("installed size added to an image (MB)", f"{source_mb():.2f}",
                 f"{installed_mb(['kubernetes-asyncio', 'python-dateutil', 'six']):.1f}"
                 " (+ certifi, urllib3)"))
    rows.extend(asyncio.run(measure(args.n)))
    width = max(len(r[0]) for r in rows)
    print(f"\n{'measure':<{width}}  {'webordinary.kube':>18}  kubernetes-asyncio")
    for label, a, b in rows:
        print(f"{label:<{width}}  {a:>18}  {b}")
    print(f"load average: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
