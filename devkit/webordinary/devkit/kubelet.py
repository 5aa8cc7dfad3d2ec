"""A kubelet stand-in for local runs: editor Deployments become local processes.

No container runtime exists where `./dev up` runs, so this plays kubelet and the Deployment
controller for the editor workload only: replicas 1 starts `python -m webordinary.editor` with
the env the operator wrote into the Deployment (secrets resolved from the API), the workspace
PVC mapped to a local folder; replicas 0 sends SIGTERM and waits out the grace period, exactly
as a pod would be stopped.

Status is reported the way a cluster does: a Pod object per running replica (Ready condition
from the readiness probe, container state, restarts, CrashLoopBackOff after repeated exits),
the Deployment's replicas/readyReplicas/availableReplicas and Available condition, and PVCs
Bound only when their StorageClass exists (else they stay Pending, as with no provisioner).
`command` replaces the editor process (tests of the operator run a pause-like stand-in);
`commands` replaces named containers only (the gateway's wake test runs the real preview
container beside a pause-like editor).

Every container of the pod is its own process, under its own uid, with its own env, volumes
and ports (containers.py): the editor's restarts and backoff stand for the pod's; the other
containers are restarted on their own (restartPolicy Always).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import os
import signal
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from webordinary.contracts.editor_env import METRICS_PORT as METRICS_CONTAINER_PORT
from webordinary.contracts.editor_env import PREVIEW_PORT as PREVIEW_CONTAINER_PORT
from webordinary.devkit import containers, endpoints

log = logging.getLogger(__name__)

EDITOR_SELECTOR = "app.kubernetes.io/component=editor"
CRASH_LOOP_AFTER = 2  # exits before a restart is held back (CrashLoopBackOff)
BACKOFF_BASE = 10.0  # seconds, doubling per exit like the kubelet's, capped at 300


def now_rfc3339() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def pod_name(deployment: dict[str, Any]) -> str:
    """`{deployment}-{template hash}-{suffix}` like a ReplicaSet's pod."""
    meta = deployment["metadata"]
    digest = hashlib.sha256(f"{meta.get('uid')}/{meta.get('generation')}".encode()).hexdigest()
    return f"{meta['name']}-{digest[:10]}-{digest[10:15]}"


def pod_status(pod: LocalPod | None, crashes: int, last_exit: int | None, waiting: str | None,
               started: str) -> dict[str, Any]:
    """A Pod's status as a kubelet reports it for one container named `editor`."""
    ready = pod is not None and pod.ready
    if pod is not None and waiting is None:
        state: dict[str, Any] = {"running": {"startedAt": started}}
    else:
        state = {"waiting": {"reason": waiting or "ContainerCreating"}}
        if waiting == "CrashLoopBackOff":
            state["waiting"]["message"] = (f"back-off restarting failed container editor "
                                           f"(exit code {last_exit})")
    container: dict[str, Any] = {
        "name": "editor", "ready": ready, "restartCount": crashes, "state": state,
        "started": pod is not None, "image": "", "imageID": "",
    }
    if last_exit is not None:
        container["lastState"] = {"terminated": {"exitCode": last_exit, "reason": "Error"}}
    flag = "True" if ready else "False"
    return {
        "phase": "Running" if pod is not None or crashes else "Pending",
        "conditions": [
            {"type": "PodScheduled", "status": "True"},
            {"type": "Initialized", "status": "True"},
            {"type": "ContainersReady", "status": flag},
            {"type": "Ready", "status": flag},
        ],
        "containerStatuses": [container],
        "startTime": started,
    }


def deployment_status(deployment: dict[str, Any], running: bool, ready: bool) -> dict[str, Any]:
    """What the Deployment controller reports for a single-replica Deployment."""
    meta = deployment["metadata"]
    wanted = int(deployment["spec"].get("replicas", 1) or 0)
    available = 1 if ready else 0
    condition = {"type": "Available", "status": "True" if available >= wanted else "False",
                 "reason": "MinimumReplicasAvailable" if available >= wanted
                 else "MinimumReplicasUnavailable"}
    status: dict[str, Any] = {
        "observedGeneration": meta.get("generation", 1),
        "replicas": 1 if running else 0,
        "readyReplicas": available,
        "availableReplicas": available,
        "updatedReplicas": 1 if running else 0,
        "unavailableReplicas": max(0, wanted - available),
        "conditions": [condition],
    }
    return status


@dataclass
class LocalPod:
    """One running editor process standing for a Deployment's single pod."""

    key: str
    process: asyncio.subprocess.Process
    preview_port: int
    metrics_port: int
    grace_seconds: int
    generation: int
    ready: bool = False
    log_path: Path = field(default_factory=Path)
    labels: dict[str, str] = field(default_factory=dict)
    name: str = ""
    started: str = ""
    # The pod's other containers (the first one is `process`), every readiness probe, the
    # pod's uids (a stopped pod takes all their processes along) and how to restart the others.
    sidecars: dict[str, asyncio.subprocess.Process] = field(default_factory=dict)
    probes: list[tuple[str, int]] = field(default_factory=list)
    uids: list[int] = field(default_factory=list)
    launches: dict[str, containers.Launch] = field(default_factory=dict)

    def processes(self) -> list[asyncio.subprocess.Process]:
        return [self.process, *self.sidecars.values()]


async def get_json(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    """GET a Kubernetes API object or list; an error status raises."""
    async with session.get(url) as response:
        response.raise_for_status()
        data: dict[str, Any] = await response.json()
        return data


def free_port() -> int:
    """A currently free loopback port (the local stand-in for a pod IP's port)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def volume_dir(root: Path, namespace: str, claim: str) -> Path:
    """Where a PersistentVolumeClaim's data lives locally (survives process restarts)."""
    path = root / "volumes" / namespace / claim
    path.mkdir(parents=True, exist_ok=True)
    return path


def workspace_mounts(deployment: dict[str, Any]) -> dict[str, str]:
    """mountPath -> claimName for every PVC volume mounted by the first container."""
    spec = deployment["spec"]["template"]["spec"]
    claims = {
        v["name"]: v["persistentVolumeClaim"]["claimName"]
        for v in spec.get("volumes", [])
        if "persistentVolumeClaim" in v
    }
    mounts = spec["containers"][0].get("volumeMounts", [])
    return {m["mountPath"]: claims[m["name"]] for m in mounts if m["name"] in claims}


class LocalKubelet:
    """Reconciles editor Deployments in the API into local processes, once a second."""

    def __init__(
        self,
        api_url: str,
        root: Path,
        *,
        extra_env: dict[str, str] | None = None,
        interval: float = 1.0,
        command: Sequence[str] | None = None,
        commands: dict[str, list[str]] | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        # A stand-in for the whole pod: only the first container runs, with this command.
        self.command = list(command) if command is not None else None
        # Stand-ins for some containers by name; the pod's other containers run for real.
        self.commands = dict(commands or {})
        self.root = root
        self.extra_env = extra_env or {}
        self.interval = interval
        self.pods: dict[str, LocalPod] = {}
        # key -> (exits so far, last exit code, monotonic time before which no restart)
        self.crashes: dict[str, tuple[int, int, float]] = {}
        self.reported: dict[str, dict[str, Any]] = {}  # pod status last written, by key
        self._session: aiohttp.ClientSession | None = None

    async def run(self) -> None:
        """Loop until cancelled; then stop every pod gracefully."""
        self._session = aiohttp.ClientSession()
        try:
            while True:
                try:
                    await self.sync()
                except (aiohttp.ClientError, OSError) as exc:
                    log.warning("kubelet: API not reachable: %s", exc)
                await asyncio.sleep(self.interval)
        finally:
            await self.stop_all()
            await self._session.close()

    async def _get(self, path: str) -> dict[str, Any]:
        assert self._session is not None
        return await get_json(self._session, f"{self.api_url}{path}")

    async def _patch_status(self, namespace: str, name: str, status: dict[str, Any],
                            plural: str = "deployments", group: str = "/apis/apps/v1") -> int:
        assert self._session is not None
        url = f"{self.api_url}{group}/namespaces/{namespace}/{plural}/{name}/status"
        headers = {"Content-Type": "application/merge-patch+json"}
        async with self._session.patch(url, json={"status": status}, headers=headers) as r:
            if r.status >= 400 and r.status != 404:
                log.warning("kubelet: status of %s %s/%s: HTTP %s", plural, namespace, name,
                            r.status)
            return r.status

    async def _send(self, method: str, path: str, body: Any = None) -> int:
        assert self._session is not None
        async with self._session.request(method, f"{self.api_url}{path}", json=body) as r:
            return r.status

    async def bind_volumes(self) -> None:
        """The volume provisioner's part: a Pending PVC whose StorageClass exists is Bound."""
        classes = {item["metadata"]["name"] for item in
                   (await self._get("/apis/storage.k8s.io/v1/storageclasses")).get("items", [])}
        claims = await self._get("/api/v1/persistentvolumeclaims")
        for claim in claims.get("items", []):
            if (claim.get("status") or {}).get("phase") == "Bound":
                continue
            if (claim.get("spec") or {}).get("storageClassName") not in classes:
                continue
            meta, spec = claim["metadata"], claim["spec"]
            status = {"phase": "Bound", "accessModes": spec.get("accessModes", []),
                      "capacity": (spec.get("resources") or {}).get("requests", {})}
            await self._patch_status(meta["namespace"], meta["name"], status,
                                     "persistentvolumeclaims", "/api/v1")

    async def _report_pod(self, deployment: dict[str, Any], pod: LocalPod | None,
                          waiting: str | None) -> None:
        """Create, update or delete the Pod object standing for this Deployment's replica."""
        meta = deployment["metadata"]
        namespace, key = meta["namespace"], f"{meta['namespace']}/{meta['name']}"
        exits, last_exit, _ = self.crashes.get(key, (0, 0, 0.0))
        wanted = int(deployment["spec"].get("replicas", 1) or 0) > 0
        name = pod.name if pod is not None else pod_name(deployment)
        path = f"/api/v1/namespaces/{namespace}/pods"
        reported = self.reported.get(key)
        if not wanted:
            if reported is not None:
                await self._send("DELETE", f"{path}/{reported['name']}")
                self.reported.pop(key, None)
            return
        started = pod.started if pod is not None else (reported or {}).get("started", "")
        status = pod_status(pod, exits, last_exit if exits else None, waiting,
                            started or now_rfc3339())
        if reported is not None and reported["name"] != name:
            await self._send("DELETE", f"{path}/{reported['name']}")
            reported = None
        if reported is None:
            template = deployment["spec"]["template"]
            body = {"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": name, "namespace": namespace,
                                 "labels": dict(template["metadata"].get("labels", {}))},
                    "spec": template["spec"]}
            code = await self._send("POST", path, body)
            if code >= 400 and code != 409:
                log.warning("kubelet: pod %s/%s not created: HTTP %s", namespace, name, code)
                return
        if reported is None or reported["status"] != status:
            await self._patch_status(namespace, name, status, "pods", "/api/v1")
        self.reported[key] = {"name": name, "status": status, "started": started}

    async def _secrets(self, namespace: str) -> dict[tuple[str, str], str]:
        data = await self._get(f"/api/v1/namespaces/{namespace}/secrets")
        out: dict[tuple[str, str], str] = {}
        for item in data.get("items", []):
            for key, value in (item.get("data") or {}).items():
                out[(item["metadata"]["name"], key)] = base64.b64decode(value).decode()
            for key, value in (item.get("stringData") or {}).items():
                out[(item["metadata"]["name"], key)] = value
        return out

    async def sync(self) -> None:
        """One pass: bind volumes, start wanted pods, stop unwanted ones, report status."""
        await self.bind_volumes()
        data = await self._get(f"/apis/apps/v1/deployments?labelSelector={EDITOR_SELECTOR}")
        seen: set[str] = set()
        for deployment in data.get("items", []):
            meta = deployment["metadata"]
            key = f"{meta['namespace']}/{meta['name']}"
            seen.add(key)
            wanted = int(deployment["spec"].get("replicas", 1) or 0) > 0
            pod = self.pods.get(key)
            waiting: str | None = None
            if pod is not None and pod.process.returncode is not None:
                exits = self.crashes.get(key, (0, 0, 0.0))[0] + 1
                backoff = min(BACKOFF_BASE * 2 ** (exits - 1), 300.0)
                self.crashes[key] = (exits, pod.process.returncode, time.monotonic() + backoff)
                log.warning("kubelet: %s exited with %s (%s times)", key,
                            pod.process.returncode, exits)
                await self.stop(key)  # the pod's other containers go with it
                pod = None
            if wanted and pod is not None and pod.generation != meta.get("generation", 1):
                await self.stop(key)
                pod = None
            exits, _, hold = self.crashes.get(key, (0, 0, 0.0))
            if wanted and pod is None:
                if exits >= CRASH_LOOP_AFTER and time.monotonic() < hold:
                    waiting = "CrashLoopBackOff"
                else:
                    pod = await self.start(deployment)
                    if pod is None:
                        waiting = "CreateContainerConfigError"
            elif not wanted:
                self.crashes.pop(key, None)
                if pod is not None:
                    await self.stop(key)
                    pod = None
            if pod is not None:
                await self._restart_exited(pod)
            if pod is not None and not pod.ready:
                pod.ready = await self._probe(pod)
            await self._report_pod(deployment, pod, waiting)
            status = deployment_status(deployment, pod is not None, pod is not None and pod.ready)
            if deployment.get("status", {}) != {**deployment.get("status", {}), **status}:
                await self._patch_status(meta["namespace"], meta["name"], status)
        for key in set(self.pods) - seen:
            await self.stop(key)
        await self.publish_endpoints()

    async def publish_endpoints(self) -> None:
        """Keep each editor Service's EndpointSlice: the local ports of the pod it selects."""
        assert self._session is not None
        services = await self._get(f"/api/v1/services?labelSelector={EDITOR_SELECTOR}")
        slices = await self._get("/apis/discovery.k8s.io/v1/endpointslices?labelSelector="
                                 f"{endpoints.MANAGED_BY_LABEL}={endpoints.MANAGED_BY}")
        live = {(s["metadata"]["namespace"], s["metadata"]["name"]): s
                for s in slices.get("items", [])}
        for service in services.get("items", []):
            meta = service["metadata"]
            selector = service.get("spec", {}).get("selector") or {}
            pod = next((p for k, p in self.pods.items() if k.startswith(f"{meta['namespace']}/")
                        and selector and selector.items() <= p.labels.items()), None)
            ports = None if pod is None else {
                "preview": pod.preview_port, str(PREVIEW_CONTAINER_PORT): pod.preview_port,
                "metrics": pod.metrics_port, str(METRICS_CONTAINER_PORT): pod.metrics_port,
            }
            desired = endpoints.endpoint_slice(service, ports, pod is not None and pod.ready)
            key = (meta["namespace"], desired["metadata"]["name"])
            current = live.get(key)
            if not endpoints.differs(desired, current):
                continue
            base = f"{self.api_url}/apis/discovery.k8s.io/v1/namespaces/{meta['namespace']}"
            if current is None:
                request = self._session.post(f"{base}/endpointslices", json=desired)
            else:
                request = self._session.put(f"{base}/endpointslices/{key[1]}", json=desired)
            async with request as response:
                if response.status >= 400:
                    log.warning("kubelet: EndpointSlice %s/%s: HTTP %s %s", *key,
                                response.status, (await response.text())[:300])

    async def _probe(self, pod: LocalPod) -> bool:
        """Ready when every container's readiness probe answers 200 (all containers up)."""
        assert self._session is not None
        if any(p.returncode is not None for p in pod.sidecars.values()):
            return False
        for path, port in pod.probes or [("/readyz", pod.metrics_port)]:
            url = f"http://127.0.0.1:{port}{path}"
            try:
                async with self._session.get(url, timeout=aiohttp.ClientTimeout(total=1)) as r:
                    if r.status != 200:
                        return False
            except (aiohttp.ClientError, TimeoutError):
                return False
        return True

    async def start(self, deployment: dict[str, Any]) -> LocalPod | None:
        """Start the pod: init containers to completion, then one process per container,
        each with its own uid, env and volumes (see containers.py)."""
        meta = deployment["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        aws = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
        plan = containers.plan_pod(deployment, await self._secrets(namespace), self.root,
                                   extra_env=self.extra_env, aws_env=aws,
                                   first_command=self.command, commands=self.commands)
        if plan.problems:
            log.warning("kubelet: %s/%s cannot start: %s", namespace, name,
                        "; ".join(plan.problems))
            return None
        logs = self.root / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        logs.chmod(0o700)  # other tenants' processes must not read a pod's output
        log_path = logs / f"{namespace}-{name}.log"
        for init in plan.init:
            code = await self._run_to_end(init, log_path)
            if code != 0:
                log.warning("kubelet: %s/%s init container %s exited with %s", namespace,
                            name, init.name, code)
                return None
        for path in plan.subpaths:
            path.mkdir(parents=True, exist_ok=True)
        processes: dict[str, asyncio.subprocess.Process] = {}
        for launch in plan.containers:
            processes[launch.name] = await self._spawn(launch, log_path)
        first, *others = plan.containers
        grace = int(deployment["spec"]["template"]["spec"].get(
            "terminationGracePeriodSeconds", 30))
        preview_port = plan.named_ports.get("preview") or free_port()
        metrics_port = plan.named_ports.get("metrics") or free_port()
        pod = LocalPod(
            key=f"{namespace}/{name}", process=processes[first.name], preview_port=preview_port,
            metrics_port=metrics_port, grace_seconds=grace,
            generation=meta.get("generation", 1), log_path=log_path,
            labels=dict(deployment["spec"]["template"]["metadata"].get("labels", {})),
            name=pod_name(deployment), started=now_rfc3339(),
            sidecars={launch.name: processes[launch.name] for launch in others},
            probes=[launch.readiness for launch in plan.containers if launch.readiness],
            uids=[launch.uid for launch in plan.containers if launch.uid is not None],
            launches={launch.name: launch for launch in others},
        )
        self.pods[pod.key] = pod
        log.info("kubelet: started %s (%s; preview :%s, log %s)", pod.key,
                 ", ".join(f"{launch.name} pid {processes[launch.name].pid} uid {launch.uid}"
                           for launch in plan.containers), preview_port, log_path)
        return pod

    async def _restart_exited(self, pod: LocalPod) -> None:
        """restartPolicy Always for the pod's other containers: an exited one starts again
        (the pod is not ready until it answers its probe)."""
        for name, process in list(pod.sidecars.items()):
            if process.returncode is None or name not in pod.launches:
                continue
            log.warning("kubelet: %s container %s exited with %s; restarting", pod.key, name,
                        process.returncode)
            pod.ready = False
            pod.sidecars[name] = await self._spawn(pod.launches[name], pod.log_path)

    async def _spawn(self, launch: containers.Launch,
                     log_path: Path) -> asyncio.subprocess.Process:
        with log_path.open("ab") as sink:
            return await asyncio.create_subprocess_exec(
                *launch.argv, env=launch.env, cwd="/", stdout=sink, stderr=sink,
                start_new_session=True,
            )

    async def _run_to_end(self, launch: containers.Launch, log_path: Path) -> int:
        process = await self._spawn(launch, log_path)
        try:
            return await asyncio.wait_for(process.wait(), 120)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
            return -1

    async def stop(self, key: str) -> None:
        """SIGTERM every container, wait the grace period, then SIGKILL: the pod termination
        contract."""
        pod = self.pods.pop(key, None)
        if pod is None:
            return
        running = [p for p in pod.processes() if p.returncode is None]
        if running:
            log.info("kubelet: stopping %s (grace %ss)", key, pod.grace_seconds)
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(p.wait() for p in running)),
                                   timeout=pod.grace_seconds)
        for process in pod.processes():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
        # What a container's cgroup would take along: every process of its (pod-unique) uid.
        containers.kill_uids(pod.uids)

    async def stop_all(self) -> None:
        await asyncio.gather(*(self.stop(key) for key in list(self.pods)))
