"""Benchmark: N EditEnvironments created at once, the real operator as a subprocess.

    ./dev bench operator_scale --n 5000

Prints one table: time until all are Ready, create->Ready percentiles, Kubernetes API writes
per environment (creates, status patches, kopf's own patches, Events), SQS calls, the
operator's peak RSS, its CPU while everything sits idle over two windows of the production
drift interval each (the first may hold one-off work after the burst, the second is the steady
state), and the CPU seconds of the operator against those of its substrate (the API emulator,
moto) so a slow run says which part was the limit. Environments get a long
idleTimeout: idle means idle (no editor goes to sleep inside the window).
The machine may be shared: wall-clock figures come with the load average; CPU seconds and
writes per environment do not depend on it.
"""

import os
import sys

# The repository root, for `tests.plugins` helpers when run as a plain script.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse
import asyncio
import contextlib
import gc
import http.client
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
from urllib.parse import urlsplit

import psutil

from webordinary.contracts import naming
from webordinary.contracts.environment import API_VERSION, KIND, PLURAL
from webordinary.devkit.aws import FAKE_CREDENTIALS
from webordinary.devkit.kube.store import Watcher
from webordinary.devkit.kubeapi import start_kube_api
from webordinary.devkit.kubelet import deployment_status
from webordinary.operator.heap import FreezeAfterFull
from webordinary.operator.settings import OperatorSettings

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "bench"


def request(url: str, method: str = "GET", body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as response:
        return json.loads(response.read() or b"null")


class ReadyWatcher:
    """Notes when each environment is first Ready (Ready=True: queues, children, workspace
    Bound and the editor available, which `Controllers` below report as the cluster would),
    from the store's own watch on the emulator's loop, as `Controllers` follows it: an
    observer of the run, it reads the events' objects as they are (a watch over HTTP cost the
    emulator a write and this process a chunked read and a decode per event, ~0.3 ms of the
    emulator's host per environment)."""

    def __init__(self, kube: Any, namespace: str) -> None:
        self.ready: dict[str, float] = {}
        self.kube = kube
        resource = kube.store.find(API_VERSION.rpartition("/")[0],
                                   API_VERSION.rpartition("/")[2], PLURAL)
        self._watcher = Watcher(resource, namespace, None, [], [])
        self._run = asyncio.run_coroutine_threadsafe(self._follow(), kube.loop)

    async def _follow(self) -> None:
        self.kube.store.subscribe(self._watcher, None, initial=False)
        ready = self.ready
        while (item := await self._watcher.queue.get()) is not None:
            obj = item[1].obj
            for condition in (obj.get("status") or {}).get("conditions") or []:
                if condition.get("type") == "Ready" and condition.get("status") == "True":
                    ready.setdefault(obj["metadata"]["name"], time.monotonic())

    def stop(self) -> None:
        async def end() -> None:
            self.kube.store.unsubscribe(self._watcher)
            self._watcher.queue.put_nowait(None)

        with contextlib.suppress(Exception):
            self.kube.call(end())
        with contextlib.suppress(Exception):
            self._run.result(timeout=10)


class Controllers:
    """What the cluster's controllers do for the operator's children, without running editors:
    the volume provisioner binds each workspace PVC, the Deployment controller and kubelet
    report an editor available once it is scaled to 1 (an instant editor start). Writes go to
    the emulator's store directly: they are not the operator's and are not counted. Like a real
    controller it follows a watch (the store's own, on the emulator's loop) and acts on each
    change: a pass over every claim and Deployment each 0.3 s cost the emulator's thread
    O(environments) per pass, quadratic in a burst."""

    def __init__(self, kube: Any, namespace: str) -> None:
        self.kube = kube
        store = kube.store
        self._resources = (store.find("", "v1", "persistentvolumeclaims"),
                           store.find("apps", "v1", "deployments"))
        self._watchers = [Watcher(resource, namespace, None, [], [])
                          for resource in self._resources]
        self._own: set[str] = set()  # resourceVersions of its own writes: their events are no news
        self._runs = [asyncio.run_coroutine_threadsafe(self._follow(watcher), kube.loop)
                      for watcher in self._watchers]

    async def _follow(self, watcher: Watcher) -> None:
        store = self.kube.store
        resource = watcher.resource
        objects = store.objects[resource.storage_key]
        for item in store.subscribe(watcher, None, initial=True):
            watcher.queue.put_nowait(item)
        while (item := await watcher.queue.get()) is not None:
            kind, event = item
            meta = event.obj["metadata"]
            if meta["resourceVersion"] in self._own:
                self._own.discard(meta["resourceVersion"])
                continue
            current = objects.get((meta["namespace"], meta["name"]))
            if kind == "DELETED" or current is None or (
                    current["metadata"]["resourceVersion"] != meta["resourceVersion"]):
                continue  # gone, or a later event follows with the newer version
            try:
                self._act(resource, current)
            except Exception as error:  # a loaded machine's slow write: the next event acts
                print(f"controllers stand-in: {error!r}", file=sys.stderr)

    def _act(self, resource: Any, obj: dict[str, Any]) -> None:
        store = self.kube.store
        meta = obj["metadata"]
        if resource.kind == "PersistentVolumeClaim":
            if (obj.get("status") or {}).get("phase") != "Bound":
                spec = obj["spec"]
                bound, _ = store.patch(resource, meta["namespace"], meta["name"],
                                       "application/merge-patch+json", {"status": {
                                           "phase": "Bound",
                                           "accessModes": spec.get("accessModes", []),
                                           "capacity": spec["resources"]["requests"]}},
                                       subresource="status")
                self._own.add(bound["metadata"]["resourceVersion"])
            return
        running = int(obj["spec"].get("replicas") or 0) > 0
        status = deployment_status(obj, running=running, ready=running)
        if obj.get("status") != status:
            reported, _ = store.patch(resource, meta["namespace"], meta["name"],
                                      "application/merge-patch+json", {"status": status},
                                      subresource="status")
            self._own.add(reported["metadata"]["resourceVersion"])

    def stop(self) -> None:
        async def end() -> None:
            for watcher in self._watchers:
                self.kube.store.unsubscribe(watcher)
                watcher.queue.put_nowait(None)

        with contextlib.suppress(Exception):
            self.kube.call(end())
        for run in self._runs:
            with contextlib.suppress(Exception):
                run.result(timeout=10)


class GcClock:
    """Time this process (the emulator's host) spends in CPython's garbage collections."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.full_seconds = 0.0
        self.full = 0
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        elapsed = time.perf_counter() - self._started
        self.seconds += elapsed
        if info.get("generation") == 2:
            self.full += 1
            self.full_seconds += elapsed


def freeze_after_young(phase: str, info: dict[str, Any]) -> None:
    """Also freeze what survives a young or middle collection (generations 0 and 1) in this
    process: the emulator's objects and watch history live for minutes, and each was walked
    again by every later collection until the next freeze (n=1,000: GC until Ready 0.9 ->
    0.2 s). A real API server's collector runs on its own machine. Frozen objects are still
    freed by reference counting; cycles that die while frozen stay until FreezeAfterFull's
    unfreeze: for a bench's run, a little memory (the host's RSS is in the table)."""
    if phase == "stop" and info.get("generation") in (0, 1):
        gc.freeze()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def started_up(proc: psutil.Process, timeout: float = 60.0) -> None:
    """Wait until the operator has started (imports, log-in, its watches' first LISTs): its
    CPU until Ready is the burst's alone. A fixed 2 s wait was too short on a loaded machine,
    and ~1.5 CPU-s of start-up counted as the burst's."""
    time.sleep(2.0)
    deadline = time.monotonic() + timeout
    before = cpu_seconds(proc)
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = cpu_seconds(proc)
        if now - before < 0.02:
            return
        before = now


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def sqs_counts(moto_url: str) -> tuple[dict[str, int], dict[str, int]]:
    """SQS calls by action and error answers ("Action status") so far, as moto counted them
    (bench/motocount.py)."""
    answer = request(f"{moto_url}/bench/sqs-counts")
    return dict(answer["counts"]), dict(answer["errors"])


class IdleWindow:
    """The operator's CPU, API reads and writes and SQS calls over one idle window."""

    def __init__(self, proc: psutil.Process, kube: Any, moto_url: str) -> None:
        self._proc, self._kube, self._moto = proc, kube, moto_url
        self._cpu = cpu_seconds(proc)
        self._reads = kube.request_counts().get("GET", 0)
        self._writes = kube.write_counts()
        self._sqs = sum(sqs_counts(moto_url)[0].values())
        self.started = time.monotonic()

    def end(self) -> None:
        self.elapsed = time.monotonic() - self.started
        self.cpu = 100 * (cpu_seconds(self._proc) - self._cpu) / self.elapsed
        self.reads = self._kube.request_counts().get("GET", 0) - self._reads
        after = self._kube.write_counts()
        self.writes = {k: v - self._writes.get(k, 0) for k, v in after.items()
                       if v != self._writes.get(k, 0)}
        self.sqs = sum(sqs_counts(self._moto)[0].values()) - self._sqs
        self.load = load_average()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--idle", type=float, default=None,
                        help="idle CPU window in s (default: one production drift interval, so "
                             "every environment's drift tick falls inside it)")
    parser.add_argument("--windows", type=int, default=2,
                        help="idle windows measured one after the other (the first may hold "
                             "one-off work; the second shows the steady state)")
    parser.add_argument("--settle", type=float, default=None,
                        help="wait this long after all are Ready before the idle windows "
                             "(default: one drift interval; with 0 the first window holds each "
                             "environment's first drift tick after the burst, which must be "
                             "free too)")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--drift-interval", type=float, default=None,
                        help="override the operator's drift timer (default: its production "
                             "default; the idle figure is only meaningful with it)")
    args = parser.parse_args()
    default_interval = float(OperatorSettings.model_fields["drift_interval_seconds"].default)
    interval = args.drift_interval or default_interval
    idle_window = args.idle if args.idle is not None else interval
    settle = args.settle if args.settle is not None else interval
    # Turn SIGTERM (e.g. from `timeout`) into SystemExit so the `finally` below still stops
    # the operator and moto subprocesses instead of leaving them behind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    # This process hosts the emulator, whose store and watch history grow to millions of
    # objects at 5,000 environments: each full collection walked them all with the emulator
    # stopped. A real API server's Go collector runs concurrently; the operator's own policy
    # (freeze what survives a full collection) keeps it to what is new, as bench lifecycle does.
    FreezeAfterFull().install()
    gc.callbacks.append(freeze_after_young)
    kube = start_kube_api([ROOT / "crds"])
    # moto gets its own process (and GIL): in the bench's process it would compete with the
    # emulator, and the operator would be measured against a starved AWS stand-in.
    # It counts SQS calls itself (a counting proxy here cost this process, the emulator's, a
    # forwarded request per call).
    moto = subprocess.Popen([sys.executable, "-P", str(ROOT / "bench" / "motocount.py")],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert moto.stdout is not None
    moto_url = moto.stdout.readline().strip()
    for key, value in FAKE_CREDENTIALS.items():
        os.environ.setdefault(key, value)
    request(f"{kube.url}/api/v1/namespaces", "POST",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    env = dict(os.environ)
    env.update({
        "WEBORDINARY_OPERATOR_KUBE_API_URL": kube.url,
        "WEBORDINARY_OPERATOR_SQS_ENDPOINT_URL": moto_url,
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
    # The bench's own process holds the API emulator (and the controllers' stand-in, the
    # create clients and the Ready watcher); moto runs in its own.
    parts = {"operator": proc, "API emulator (+ bench)": psutil.Process(),
             "moto (SQS)": psutil.Process(moto.pid)}
    peak_rss = 0
    controllers = Controllers(kube, NAMESPACE)
    watcher: ReadyWatcher | None = None
    load_before = load_average()
    try:
        started_up(proc)
        path = f"{kube.url}/apis/{API_VERSION}/namespaces/{NAMESPACE}/{PLURAL}"
        watcher = ReadyWatcher(kube, NAMESPACE)
        kube.reset_counts()
        gc_clock = GcClock()
        cpu_start = {name: cpu_seconds(p) for name, p in parts.items()}
        emulator_start = kube.cpu_seconds()  # its own thread, without the bench's parts
        ids = [f"u{i:04d}" for i in range(args.n)]
        names = [naming.environment_name("bench", "site", uid) for uid in ids]
        created: dict[str, float] = {}
        started = time.monotonic()

        # One keep-alive connection per sending thread, as a client library keeps (a new
        # connection per create cost this process, the emulator's host, a connect, accept
        # and close each).
        connections = threading.local()
        opened: list[http.client.HTTPConnection] = []

        def create(pair: tuple[str, str]) -> None:
            uid, name = pair
            if not hasattr(connections, "http"):
                connections.http = http.client.HTTPConnection(urlsplit(kube.url).netloc,
                                                              timeout=60)
                opened.append(connections.http)
            body = json.dumps({
                "apiVersion": API_VERSION, "kind": KIND,
                "metadata": {"name": name, "namespace": NAMESPACE},
                "spec": {"clientId": "bench", "projectId": "site", "userId": uid,
                         "repository": {"url": "https://example.com/site.git"},
                         "sessions": [f"t{uid}"], "idleTimeout": "24h"},
            })
            connections.http.request("POST", urlsplit(path).path, body,
                                     {"Content-Type": "application/json"})
            answer = connections.http.getresponse()
            text = answer.read()
            if answer.status != 201:
                raise RuntimeError(f"create {name}: {answer.status} {text[:300]!r}")
            created[name] = time.monotonic()

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(create, zip(ids, names, strict=True)))
        for connection in opened:
            connection.close()
        created_all = time.monotonic() - started
        ready = watcher.ready
        deadline = started + args.timeout
        while len(ready) < len(names) and time.monotonic() < deadline:
            peak_rss = max(peak_rss, proc.memory_info().rss)
            time.sleep(0.2)
        all_ready = time.monotonic() - started
        load_burst = load_average()
        burst_cpu = {name: cpu_seconds(p) - cpu_start[name] for name, p in parts.items()}
        host_rss = psutil.Process().memory_info().rss
        emulator_cpu = kube.cpu_seconds() - emulator_start
        gc_until_ready = (gc_clock.seconds, gc_clock.full, gc_clock.full_seconds)
        settle_started = time.monotonic()
        # let queued Events (posted asynchronously by kopf) land, and the burst's stragglers
        while time.monotonic() - settle_started < max(settle, 5.0):
            peak_rss = max(peak_rss, proc.memory_info().rss)
            time.sleep(0.5)
        writes = kube.write_counts()
        by_verb = kube.request_counts()
        reads = kube.read_counts()
        sqs_calls, sqs_errors = sqs_counts(moto_url)
        failed_creates = sum(v for k, v in sqs_errors.items() if k.startswith("CreateQueue "))
        server_ms = kube.timings()
        # Idle: everything Ready, nothing changes; each window spans a drift interval. The
        # second shows the steady state: a first window can hold one-off work (each
        # environment's first drift tick after the burst) that would never recur.
        idle: list[IdleWindow] = []
        for _ in range(args.windows):
            window = IdleWindow(proc, kube, moto_url)
            while time.monotonic() - window.started < idle_window:
                peak_rss = max(peak_rss, proc.memory_info().rss)
                time.sleep(0.5)
            window.end()
            idle.append(window)
    finally:
        if watcher is not None:
            watcher.stop()
        controllers.stop()
        operator.terminate()
        try:
            operator.wait(timeout=20)
        except subprocess.TimeoutExpired:
            operator.kill()
        kube.stop()
        moto.kill()

    n = len(names)
    latencies = [ready[name] - created[name] for name in names if name in ready]
    kinds = ("serviceaccounts", "persistentvolumeclaims", "networkpolicies", "services",
             "deployments")
    creates = sum(writes.get(kind, 0) for kind in kinds)
    status_patches = writes.get(f"{PLURAL}/status", 0)
    kopf_patches = writes.get(PLURAL, 0) - n  # minus the bench's own N creates
    events = writes.get("events", 0)
    operator_writes = sum(writes.values()) - n
    other = operator_writes - creates - status_patches - kopf_patches - events
    total_cpu = sum(burst_cpu.values())
    limit = max(burst_cpu, key=lambda name: burst_cpu[name])
    rows: list[tuple[str, str, str]] = [
        ("environments", f"{n}", f"load average {load_before} before, {load_burst} at Ready"),
        ("created (all POSTs done)", f"{created_all:.1f} s", ""),
        ("Ready", f"{len(ready)}/{n}", "target: all"),
        ("time until all Ready", f"{all_ready:.1f} s", "target < 90 s (n=5000), wall clock"),
        ("create->Ready p50", f"{statistics.median(latencies):.1f} s" if latencies else "-", ""),
        ("create->Ready p99", f"{percentile(latencies, 0.99):.1f} s" if latencies else "-", ""),
        ("API writes per env (operator)", f"{operator_writes / n:.2f}", "target <= 11"),
        ("  child creates", f"{creates / n:.2f}", "SA, PVC, NetworkPolicy, Service, Deployment"),
        ("  status patches", f"{status_patches / n:.2f}", "one per meaningful transition"),
        ("  kopf patches of the object", f"{kopf_patches / n:.2f}",
         "finalizer, last-handled state"),
        ("  Events", f"{events / n:.2f}", "Ready (and what needs a person)"),
        ("  other", f"{other / n:.2f}", ""),
        ("SQS calls per env", f"{sum(sqs_calls.values()) / n:.2f}",
         f"CreateQueue {sqs_calls.get('CreateQueue', 0) / n:.2f} "
         f"({failed_creates} retried after moto's own 500s)"),
        ("CPU s until Ready: operator", f"{burst_cpu['operator']:.1f} s",
         f"{1000 * burst_cpu['operator'] / n:.1f} ms per env"),
        ("CPU s until Ready: API emulator", f"{burst_cpu['API emulator (+ bench)']:.1f} s",
         f"{1000 * burst_cpu['API emulator (+ bench)'] / n:.1f} ms per env; substrate (with "
         "the bench's watcher and controllers' stand-in)"),
        ("  of which the emulator's thread", f"{emulator_cpu:.1f} s",
         f"{1000 * emulator_cpu / n:.1f} ms per env (requests, watches, the stand-in's writes)"),
        ("  of which its GC", f"{gc_until_ready[0]:.1f} s",
         f"{gc_until_ready[1]} full collections, {gc_until_ready[2]:.1f} s (this process)"),
        ("CPU s until Ready: moto", f"{burst_cpu['moto (SQS)']:.1f} s",
         f"{1000 * burst_cpu['moto (SQS)'] / max(1, sum(sqs_calls.values())):.2f} ms per SQS "
         "call; substrate"),
        ("  busiest part", limit,
         f"{100 * burst_cpu[limit] / total_cpu:.0f} % of {total_cpu:.0f} CPU s on "
         f"{os.cpu_count()} cores; one process uses at most one core"),
        ("operator peak RSS", f"{peak_rss / 2**20:.0f} MiB", "target < 1 GiB"),
        ("emulator host's RSS at Ready", f"{host_rss / 2**20:.0f} MiB",
         "the store, its watch history and the bench's own"),
    ]
    for number, window in enumerate(idle, 1):
        rows += [
            (f"operator CPU idle, window {number} ({window.elapsed:.0f} s)",
             f"{window.cpu:.2f} %",
             f"target < 2 %; drift interval {interval:.0f} s; load {window.load}"),
            ("  API writes", f"{sum(window.writes.values())}",
             json.dumps(window.writes) if window.writes else "target 0"),
            ("  API reads / SQS calls", f"{window.reads} / {window.sqs}",
             "the drift ticks' reads"),
        ]
    width = max(len(r[0]) for r in rows)
    print(f"\noperator benchmark (log {log.name})")
    for label, value, note in rows:
        print(f"  {label:<{width}}  {value:>12}  {note}")
    print(f"  writes by resource: {json.dumps(writes, sort_keys=True)}")
    print(f"  API requests by verb until Ready: {json.dumps(by_verb)}")
    print(f"  API reads by resource until Ready: {json.dumps(reads, sort_keys=True)}")
    print(f"  emulator mean handling ms by verb: "
          f"{json.dumps({k: round(v, 1) for k, v in server_ms.items()})}")
    print(f"  SQS calls by action: {json.dumps(sqs_calls, sort_keys=True)}")
    print(f"  SQS error answers (action status): {json.dumps(sqs_errors, sort_keys=True)}")


if __name__ == "__main__":
    main()
