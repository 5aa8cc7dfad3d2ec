"""Kubernetes API emulator: validation cost and request overhead under an operator-like load.

Run: `./dev bench kubeapi` (= .venv/bin/python bench/kubeapi.py [environments]).
Simulates what the operator does per EditEnvironment: create it, 6 owned children, status
patches, with a cluster-wide watch open on each resource, at 64 requests in flight.
"""

from __future__ import annotations

import os
import sys

# The repository root, for `tests.plugins` helpers when run as a plain script.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp

from webordinary.devkit.kube.resources import BUILTINS
from webordinary.devkit.kube.validation import validate_builtin
from webordinary.devkit.kubeapi import KubeAPI, start_kube_api

ROOT = Path(__file__).resolve().parents[1]
NS = "webordinary"
EE = f"/apis/webordinary.dev/v1alpha1/namespaces/{NS}/editenvironments"


def environment(index: int) -> dict[str, Any]:
    return {
        "apiVersion": "webordinary.dev/v1alpha1", "kind": "EditEnvironment",
        "metadata": {"name": f"client{index}-site-user"},
        "spec": {"clientId": f"client{index}", "projectId": "site", "userId": "user",
                 "repository": {"url": "https://example.com/repo.git"}},
    }


def children(name: str, owner: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    meta = {"name": name, "labels": {"app.kubernetes.io/instance": name},
            "ownerReferences": [{"apiVersion": owner["apiVersion"], "kind": owner["kind"],
                                 "name": owner["metadata"]["name"],
                                 "uid": owner["metadata"]["uid"], "controller": True,
                                 "blockOwnerDeletion": True}]}
    labels = {"app": name}
    return [
        (f"/api/v1/namespaces/{NS}/serviceaccounts",
         {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta}),
        (f"/api/v1/namespaces/{NS}/persistentvolumeclaims",
         {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta,
          "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "efs-sc",
                   "resources": {"requests": {"storage": "5Gi"}}}}),
        (f"/apis/apps/v1/namespaces/{NS}/deployments", deployment(meta, labels)),
        (f"/api/v1/namespaces/{NS}/services",
         {"apiVersion": "v1", "kind": "Service", "metadata": meta,
          "spec": {"selector": labels, "ports": [{"name": "http", "port": 4321}]}}),
        (f"/apis/networking.k8s.io/v1/namespaces/{NS}/ingresses",
         {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta,
          "spec": {"rules": [{"http": {"paths": [{
              "path": f"/session/{name}", "pathType": "Prefix",
              "backend": {"service": {"name": name, "port": {"number": 4321}}}}]}}]}}),
        (f"/apis/networking.k8s.io/v1/namespaces/{NS}/networkpolicies",
         {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta,
          "spec": {"podSelector": {"matchLabels": labels}, "policyTypes": ["Ingress"],
                   "ingress": [{"ports": [{"port": 4321}]}]}}),
    ]


def deployment(meta: dict[str, Any], labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
        "spec": {"replicas": 0, "selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": labels},
            "spec": {"serviceAccountName": meta["name"], "containers": [{
                "name": "editor", "image": "webordinary/editor:1.0",
                "env": [{"name": f"WEBORDINARY_{i}", "value": str(i)} for i in range(12)],
                "ports": [{"containerPort": 4321, "name": "preview"}],
                "resources": {"requests": {"cpu": "250m", "memory": "512Mi"},
                              "limits": {"memory": "2Gi"}},
                "volumeMounts": [{"name": "workspace", "mountPath": "/workspace"}]}],
                "volumes": [{"name": "workspace",
                             "persistentVolumeClaim": {"claimName": meta["name"]}}]}}},
    }


def bench_validation() -> list[tuple[str, str]]:
    resource = next(r for r in BUILTINS if r.plural == "deployments")
    doc = deployment({"name": "web", "namespace": NS}, {"app": "web"})
    validate_builtin(resource, doc)
    rounds = 500
    started = time.perf_counter()
    for _ in range(rounds):
        assert not validate_builtin(resource, doc)
    per = (time.perf_counter() - started) / rounds
    return [("validate a Deployment (cached schema)", f"{per * 1000:.2f} ms")]


async def watch(session: aiohttp.ClientSession, url: str, counter: list[int]) -> None:
    async with session.get(url, params={"watch": "true", "timeoutSeconds": "600"}) as response:
        async for _line in response.content:
            counter[0] += 1


async def workload(api: KubeAPI, count: int) -> list[tuple[str, str]]:
    connector = aiohttp.TCPConnector(limit=80)
    async with aiohttp.ClientSession(api.url, connector=connector) as session:
        events = [0]
        watchers = [asyncio.create_task(watch(session, f"/apis/{path}", events)) for path in (
            "webordinary.dev/v1alpha1/editenvironments", "apps/v1/deployments")]
        await asyncio.sleep(0.2)
        gate = asyncio.Semaphore(64)
        latencies: list[float] = []

        async def call(method: str, path: str, body: Any, content_type: str = "application/json"
                       ) -> dict[str, Any]:
            async with gate:
                started = time.perf_counter()
                async with session.request(method, path, json=body,
                                           headers={"Content-Type": content_type}) as response:
                    payload: dict[str, Any] = await response.json()
                    assert response.status < 300, payload
                latencies.append(time.perf_counter() - started)
                return payload

        async def one(index: int) -> None:
            owner = await call("POST", EE, environment(index))
            name = owner["metadata"]["name"]
            await call("PATCH", f"{EE}/{name}/status", {"status": {"phase": "Provisioning"}},
                       "application/merge-patch+json")
            await asyncio.gather(*(call("POST", path, body)
                                   for path, body in children(name, owner)))
            await call("PATCH", f"{EE}/{name}/status", {"status": {"phase": "Ready"}},
                       "application/merge-patch+json")

        api.reset_counts()
        cpu_before = api.cpu_seconds()
        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(count)))
        elapsed = time.perf_counter() - started
        cpu = api.cpu_seconds() - cpu_before
        await asyncio.sleep(0.3)
        for task in watchers:
            task.cancel()
        requests = len(latencies)
        latencies.sort()
        rows = [
            (f"{count} environments x (1 create + 6 children + 2 status patches)",
             f"{elapsed:.2f} s"),
            ("requests / s (64 in flight, client and server on this machine)",
             f"{requests / elapsed:.0f}"),
            ("client latency p50 / p99",
             f"{latencies[len(latencies) // 2] * 1000:.1f} / "
             f"{latencies[int(len(latencies) * 0.99)] * 1000:.1f} ms"),
            ("watch events delivered (2 cluster-wide watches)", str(events[0])),
            ("emulator CPU per request (thread CPU time / requests)",
             f"{cpu / requests * 1000:.2f} ms"),
            ("emulator CPU for the whole run", f"{cpu:.1f} s"),
        ]
        for verb, mean in sorted(api.timings().items()):
            rows.append((f"server wall time per {verb} (mean, includes waiting for the CPU)",
                         f"{mean:.2f} ms"))
        writes = api.write_counts()
        rows.append(("API writes per environment", f"{sum(writes.values()) / count:.1f}"))
        return rows


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    rows = bench_validation()
    started = time.perf_counter()
    api = start_kube_api([ROOT / "crds"])
    api.create_namespaces(NS)
    rows.append(("emulator start (built-ins + repo CRDs)",
                 f"{(time.perf_counter() - started) * 1000:.0f} ms"))
    try:
        rows += asyncio.run(workload(api, count))
    finally:
        api.stop()
    width = max(len(name) for name, _ in rows)
    print(f"{'measure':<{width}}  value")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
