"""Benchmark: N EditEnvironments created at once, the real operator as a subprocess.

    ./dev bench operator_scale --n 500

Prints time until all are Ready, create->Ready percentiles, Kubernetes API writes and SQS calls
per environment, the operator's peak RSS and its CPU while everything sits idle.
The machine is shared: numbers are noisy, run it twice before believing one.
"""

import os
import sys

# The repository root, for `tests.plugins` helpers when run as a plain script.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse
import json
import signal
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil

from tests.integration.operator.sqsproxy import SqsProxy
from webordinary.contracts import naming
from webordinary.contracts.environment import API_VERSION, KIND, PLURAL
from webordinary.devkit.aws import FAKE_CREDENTIALS
from webordinary.devkit.kubeapi import start_kube_api
from webordinary.devkit.kubelet import deployment_status
from webordinary.operator.settings import OperatorSettings

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "bench"
CHILD_READS_PER_TICK = 6  # GETs of the six children per drift tick


def request(url: str, method: str = "GET", body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as response:
        return json.loads(response.read() or b"null")


class ReadyWatcher:
    """Notes when each environment is first Ready (Ready=True: queues, children, workspace
    Bound and the editor available, which `Controllers` below report as the cluster would),
    from one watch stream (cheap for the emulator, unlike polling LISTs of many objects)."""

    def __init__(self, path: str) -> None:
        self.ready: dict[str, float] = {}
        version = request(path)["metadata"]["resourceVersion"]
        self._response = urllib.request.urlopen(
            f"{path}?watch=true&resourceVersion={version}&timeoutSeconds=3600", timeout=3600)
        # Daemon thread: it ends with the emulator (which closes its watch streams).
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for line in self._response:
                item = json.loads(line)["object"]
                conds = {c["type"]: c["status"]
                         for c in (item.get("status") or {}).get("conditions") or []}
                if conds.get("Ready") == "True":
                    self.ready.setdefault(item["metadata"]["name"], time.monotonic())
        except (OSError, ValueError):
            return


class Controllers:
    """What the cluster's controllers do for the operator's children, without running editors:
    the volume provisioner binds each workspace PVC, the Deployment controller and kubelet
    report an editor available once it is scaled to 1 (an instant editor start). Writes go to
    the emulator's store directly: they are not the operator's and are not counted."""

    def __init__(self, kube: Any, namespace: str) -> None:
        self.kube = kube
        self.namespace = namespace
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.3):
            try:
                self.kube.call(self._sync())
            except Exception as error:  # a slow round (a loaded machine): go on
                print(f"controllers stand-in: {error!r}", file=sys.stderr)

    async def _sync(self) -> None:
        store = self.kube.store
        deployments = store.find("apps", "v1", "deployments")
        claims = store.find("", "v1", "persistentvolumeclaims")
        for (namespace, name), claim in list(store.objects[claims.storage_key].items()):
            if namespace == self.namespace and (claim.get("status") or {}).get(
                    "phase") != "Bound":
                spec = claim["spec"]
                store.patch(claims, namespace, name, "application/merge-patch+json", {
                    "status": {"phase": "Bound", "accessModes": spec.get("accessModes", []),
                               "capacity": spec["resources"]["requests"]}}, subresource="status")
        for (namespace, name), deployment in list(store.objects[
                deployments.storage_key].items()):
            if namespace != self.namespace:
                continue
            running = int(deployment["spec"].get("replicas") or 0) > 0
            status = deployment_status(deployment, running=running, ready=running)
            if deployment.get("status") != status:
                store.patch(deployments, namespace, name, "application/merge-patch+json",
                            {"status": status}, subresource="status")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--idle", type=float, default=20.0, help="idle CPU window (s)")
    parser.add_argument("--settle", type=float, default=0.0,
                        help="wait this long after all are Ready before the idle window "
                             "(one drift interval: the window sees steady-state drift ticks)")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--drift-interval", type=float, default=None,
                        help="override the operator's drift timer (default: its own default)")
    args = parser.parse_args()
    # Turn SIGTERM (e.g. from `timeout`) into SystemExit so the `finally` below still stops
    # the operator and moto subprocesses instead of leaving them behind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    kube = start_kube_api([ROOT / "crds"])
    # moto gets its own process (and GIL): in the bench's process it would compete with the
    # emulator, and the operator would be measured against a starved AWS stand-in.
    moto = subprocess.Popen(
        [sys.executable, "-c", "import os, time; from webordinary.devkit.aws import start_moto; "
         "parent = os.getppid(); print(start_moto().endpoint_url, flush=True)\n"
         "while os.getppid() == parent: time.sleep(1)"],  # ends with the bench
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert moto.stdout is not None
    moto_url = moto.stdout.readline().strip()
    for key, value in FAKE_CREDENTIALS.items():
        os.environ.setdefault(key, value)
    proxy = SqsProxy(moto_url).start()
    request(f"{kube.url}/api/v1/namespaces", "POST",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    env = dict(os.environ)
    env.update({
        "WEBORDINARY_OPERATOR_KUBE_API_URL": kube.url,
        "WEBORDINARY_OPERATOR_SQS_ENDPOINT_URL": proxy.url,
        "WEBORDINARY_OPERATOR_METRICS_PORT": "null",
        "WEBORDINARY_OPERATOR_LIVENESS_PORT": "null",
        "WEBORDINARY_OPERATOR_LOG_LEVEL": os.environ.get(
            "WEBORDINARY_OPERATOR_LOG_LEVEL", "WARNING"),
    })
    if args.drift_interval:
        env["WEBORDINARY_OPERATOR_DRIFT_INTERVAL_SECONDS"] = str(args.drift_interval)
    log = tempfile.NamedTemporaryFile(  # noqa: SIM115 (lives as long as the operator)
        prefix="bench-operator-", suffix=".log", delete=False)
    operator = subprocess.Popen([sys.executable, "-m", "webordinary.operator"], env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    proc = psutil.Process(operator.pid)
    peak_rss = 0
    controllers = Controllers(kube, NAMESPACE)
    try:
        time.sleep(2.0)  # let it log in and start watching
        path = f"{kube.url}/apis/{API_VERSION}/namespaces/{NAMESPACE}/{PLURAL}"
        watcher = ReadyWatcher(path)
        kube.reset_counts()
        burst_cpu = proc.cpu_times()
        ids = [f"u{i:04d}" for i in range(args.n)]
        names = [naming.environment_name("bench", "site", uid) for uid in ids]
        created: dict[str, float] = {}
        started = time.monotonic()

        def create(pair: tuple[str, str]) -> None:
            uid, name = pair
            request(path, "POST", {
                "apiVersion": API_VERSION, "kind": KIND,
                "metadata": {"name": name, "namespace": NAMESPACE},
                "spec": {"clientId": "bench", "projectId": "site", "userId": uid,
                         "repository": {"url": "https://example.com/site.git"},
                         "sessions": [f"t{uid}"]},
            })
            created[name] = time.monotonic()

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(create, zip(ids, names, strict=True)))
        created_all = time.monotonic() - started
        ready = watcher.ready
        deadline = started + args.timeout
        while len(ready) < len(names) and time.monotonic() < deadline:
            peak_rss = max(peak_rss, proc.memory_info().rss)
            time.sleep(0.2)
        all_ready = time.monotonic() - started
        cpu_now = proc.cpu_times()
        burst_cpu_pct = 100 * ((cpu_now.user - burst_cpu.user)
                               + (cpu_now.system - burst_cpu.system)) / all_ready
        time.sleep(5.0)  # let queued Events (posted asynchronously by kopf) land
        writes = kube.write_counts()
        by_verb = kube.request_counts()
        with proxy.lock:
            sqs_counts = dict(proxy.counts)
            created_names = dict(proxy.created)
            sqs_errors = dict(proxy.errors)
        failed_creates = sum(v for k, v in sqs_errors.items() if k.startswith("CreateQueue "))
        server_ms = kube.timings()
        settle_started = time.monotonic()
        while time.monotonic() - settle_started < args.settle:
            peak_rss = max(peak_rss, proc.memory_info().rss)
            time.sleep(0.5)
        by_verb = kube.request_counts()
        settled_writes = kube.write_counts()
        # Idle: everything Ready, nothing changes.
        proc.cpu_percent(None)
        cpu_before = proc.cpu_times()
        idle_started = time.monotonic()
        while time.monotonic() - idle_started < args.idle:
            peak_rss = max(peak_rss, proc.memory_info().rss)
            time.sleep(0.5)
        cpu_after = proc.cpu_times()
        idle_elapsed = time.monotonic() - idle_started
        idle_cpu = 100 * ((cpu_after.user - cpu_before.user)
                          + (cpu_after.system - cpu_before.system)) / idle_elapsed
        idle_gets = kube.request_counts()["GET"] - by_verb["GET"]
        idle_cpu_seconds = idle_cpu * idle_elapsed / 100
        after = kube.write_counts()
        idle_by_resource = {k: v - settled_writes.get(k, 0) for k, v in after.items()
                            if v != settled_writes.get(k, 0)}
        idle_writes = sum(idle_by_resource.values())
    finally:
        controllers.stop()
        operator.terminate()
        try:
            operator.wait(timeout=20)
        except subprocess.TimeoutExpired:
            operator.kill()
        proxy.stop()
        kube.stop()
        moto.kill()

    n = len(names)
    latencies = [ready[name] - created[name] for name in names if name in ready]
    own_creates = writes.get(PLURAL, 0)  # includes kopf's own patches of the resource
    operator_writes = sum(writes.values()) - n  # minus the bench's own N creates
    ticks = idle_gets // CHILD_READS_PER_TICK
    tick_ms = 1000 * idle_cpu_seconds / ticks if ticks else 0.0
    default_interval = OperatorSettings.model_fields["drift_interval_seconds"].default
    amortized = 100 * (tick_ms / 1000) * n / default_interval
    rows = [
        ("environments", f"{n}", ""),
        ("created (all POSTs done)", f"{created_all:.1f} s", ""),
        ("Ready", f"{len(ready)}/{n}", ""),
        ("time until all Ready", f"{all_ready:.1f} s", "target < 30 s (n=500)"),
        ("create->Ready p50", f"{statistics.median(latencies):.2f} s" if latencies else "-", ""),
        ("create->Ready p99", f"{percentile(latencies, 0.99):.2f} s" if latencies else "-", ""),
        ("API writes per env (operator)", f"{operator_writes / n:.1f}", "target <= 15"),
        ("CreateQueue per env", f"{sqs_counts.get('CreateQueue', 0) / n:.2f}", "target <= 3"),
        ("  of them answered without error",
         f"{(sqs_counts.get('CreateQueue', 0) - failed_creates) / n:.2f}",
         "(the rest: botocore retrying moto's own 500s)"),
        ("SQS calls per env", f"{sum(sqs_counts.values()) / n:.1f}", ""),
        ("operator CPU until all Ready", f"{burst_cpu_pct:.0f} %", "of one core"),
        ("operator peak RSS", f"{peak_rss / 2**20:.0f} MiB", ""),
        (f"operator CPU idle ({idle_elapsed:.0f} s)", f"{idle_cpu:.1f} %", "target < 2 %"),
        ("API writes while idle", f"{idle_writes}", json.dumps(idle_by_resource)),
        ("drift ticks while idle", f"{ticks}", "a tick reads 6 children + the input queue"),
        ("operator CPU per drift tick", f"{tick_ms:.1f} ms" if ticks else "-",
         f"-> {amortized:.1f} % for {n} envs at the default {default_interval:.0f} s"
         if ticks else ""),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"\noperator benchmark (shared 2-core machine: numbers are noisy; log {log.name})")
    for label, value, note in rows:
        print(f"  {label:<{width}}  {value:>12}  {note}")
    print(f"  writes by resource: {json.dumps(writes, sort_keys=True)}")
    print(f"  (editenvironments writes include the bench's {n} creates: {own_creates})")
    print(f"  API requests by verb: {json.dumps(by_verb)}")
    print(f"  emulator mean handling ms by verb: "
          f"{json.dumps({k: round(v, 1) for k, v in server_ms.items()})}")
    repeated = {name: count for name, count in created_names.items() if count > 1}
    print(f"  queues with more than one CreateQueue call: {json.dumps(repeated)}")
    print(f"  SQS calls by action: {json.dumps(sqs_counts, sort_keys=True)}")
    print(f"  SQS error answers (action status): {json.dumps(sqs_errors, sort_keys=True)}")


if __name__ == "__main__":
    main()
