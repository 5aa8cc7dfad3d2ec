"""Benchmark: sleep and wake of N EditEnvironments, the real operator as a subprocess.

    ./dev bench lifecycle --n 1000

Production settings (drift interval 300 s, wake poll 60 s). Prints single wake latency (request
-> replicas 1, as the bench sees it and as the API server does, and -> available with the
devkit kubelet running a pause-like pod) and where the slowest single wakes' time went, N
simultaneous wakes -> all at replicas 1, sleep precision against last activity + idleTimeout,
SQS calls per sleeping environment per hour and the operator's CPU while all sleep.
The machine is shared: numbers are noisy, run it twice before believing one.
"""

import os
import sys

# The repository root, for `tests.*` helpers when run as a plain script.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import random
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from webordinary.contracts import naming
from webordinary.contracts.activity import activity_patch, wake_patch
from webordinary.contracts.environment import API_VERSION, KIND, PLURAL
from webordinary.devkit.aws import FAKE_CREDENTIALS
from webordinary.devkit.kubeapi import start_kube_api
from webordinary.devkit.kubelet import LocalKubelet
from webordinary.operator.heap import FreezeAfterFull
from webordinary.operator.looplag import StallReporter

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "bench"
STALL_MS = 20  # event-loop stalls reported (emulator and operator) during the single wakes


def request(url: str, method: str = "GET", body: Any = None,
            content_type: str = "application/json") -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": content_type})
    with urllib.request.urlopen(req, timeout=60) as response:
        return json.loads(response.read() or b"null")


class DeploymentWatcher:
    """Every editor Deployment's spec.replicas and availableReplicas over time, from one watch
    stream (events carry the time the bench saw them)."""

    def __init__(self, path: str) -> None:
        self.lock = threading.Lock()
        self.replicas: dict[str, list[tuple[float, int]]] = {}
        self.available: dict[str, list[tuple[float, int]]] = {}
        version = request(path)["metadata"]["resourceVersion"]
        self._response = urllib.request.urlopen(
            f"{path}?watch=true&resourceVersion={version}&timeoutSeconds=3600", timeout=3600)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for line in self._response:
                seen = time.time()
                item = json.loads(line)["object"]
                name = item["metadata"]["name"].removesuffix("-editor")
                want = int((item.get("spec") or {}).get("replicas", 1))
                have = int((item.get("status") or {}).get("availableReplicas") or 0)
                with self.lock:
                    for series, value in ((self.replicas, want), (self.available, have)):
                        history = series.setdefault(name, [])
                        if not history or history[-1][1] != value:
                            history.append((seen, value))
        except (OSError, ValueError):
            return

    def first(self, series: str, name: str, value: int, after: float) -> float | None:
        with self.lock:
            history = list(getattr(self, series).get(name, []))
        return next((t for t, v in history if v == value and t >= after), None)

    def now(self, series: str, name: str) -> int | None:
        with self.lock:
            history = getattr(self, series).get(name)
        return history[-1][1] if history else None


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def send_stamps(path: str, names: list[str], patch: str, connections: int = 32
                ) -> dict[str, Any]:
    """One stamp merge patch per environment (`patch`: wake or activity), from a sender process
    of its own (bench/stamps.py: a lean keep-alive client, as Hermes sends one patch per
    environment): this process hosts the emulator, and a client here would compete with it.
    Returns the sender's report: `first` request written, `last_ack`, `stamps` per name."""
    with tempfile.NamedTemporaryFile("w", prefix="bench-names-", suffix=".txt") as file:
        file.write("\n".join(names))
        file.flush()
        sender = subprocess.Popen(
            [sys.executable, "-P", str(ROOT / "bench" / "stamps.py"), path, patch, file.name,
             "--connections", str(connections)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert sender.stdin is not None
        assert sender.stdout is not None
        if sender.stdout.readline().strip() != "ready":
            raise RuntimeError("the stamp sender did not start")
        sender.stdin.write("go\n")
        sender.stdin.flush()
        report: dict[str, Any] = json.loads(sender.stdout.readline())
        sender.wait(timeout=60)
    if report["failed"]:
        raise RuntimeError(f"stamps refused: {dict(list(report['failed'].items())[:5])}")
    return report


def reconciled(path: str) -> int:
    """Environments whose status reports their current generation."""
    items = request(path)["items"]
    return sum(1 for item in items if (item.get("status") or {}).get("observedGeneration")
               == item["metadata"].get("generation"))


@contextlib.contextmanager
def profiling(folder: str | None, pid: int, phase: str) -> Iterator[None]:
    """py-spy samples of the operator during one phase (`--profile DIR`, py-spy installed;
    BENCH_PROFILE_RATE samples per second, 50 unless set)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not folder or not os.path.exists(spy):
        yield
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    out = Path(folder) / f"{phase}.txt"
    rate = os.environ.get("BENCH_PROFILE_RATE", "50")  # samples per second
    extra = os.environ.get("BENCH_PROFILE_FLAGS", "").split()
    recorder = subprocess.Popen([spy, "record", "-r", rate, *extra, "-f", "raw", "-o", str(out),
                                 "--pid", str(pid), "--nonblocking"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        recorder.send_signal(signal.SIGINT)
        recorder.wait(timeout=60)


def api_calls(kube: Any) -> int:
    """Requests the emulator has served (watches excluded)."""
    return sum(v for k, v in kube.request_counts().items() if k != "WATCH")


def cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def wait(check: Any, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(step)
    return bool(check())


def run_kubelet(api_url: str, root: Path) -> tuple[threading.Thread, Any]:
    node = LocalKubelet(api_url, root, command=[sys.executable, "-m", "webordinary.devkit.pause"])
    loop = asyncio.new_event_loop()
    holder: dict[str, asyncio.Task[None]] = {}

    async def main() -> None:
        holder["task"] = asyncio.current_task()  # type: ignore[assignment]
        await node.run()

    def target() -> None:
        with contextlib.suppress(asyncio.CancelledError):
            loop.run_until_complete(main())

    thread = threading.Thread(target=target, daemon=True)
    thread.start()

    def stop() -> None:
        while "task" not in holder:
            time.sleep(0.01)
        loop.call_soon_threadsafe(holder["task"].cancel)
        thread.join(timeout=60)

    return thread, stop


class Pauses:
    """This process's garbage-collection pauses (it hosts the emulator and the watcher that
    timestamps what the operator did: a pause here delays both)."""

    def __init__(self) -> None:
        self.spans: list[tuple[float, float]] = []
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._start = time.time()
        else:
            self.spans.append((self._start, time.time()))

    def within(self, start: float, end: float) -> float:
        """Seconds of pause between `start` and `end`."""
        return sum(max(0.0, min(b, end) - max(a, start)) for a, b in self.spans)


def sqs_counts(moto_url: str) -> dict[str, int]:
    """SQS calls by action so far, as moto counted them (bench/motocount.py)."""
    return dict(request(f"{moto_url}/bench/sqs-counts")["counts"])


def operator_stalls(log_path: str) -> list[dict[str, Any]]:
    """The operator's event-loop stall reports (looplag.StallReporter) from its log."""
    found = []
    with open(log_path, errors="replace") as lines:
        for line in lines:
            match = re.search(r"event loop stalled: (\{.*\})", line)
            if match:
                found.append(json.loads(match.group(1)))
    return found


def overlapping(stalls: list[dict[str, Any]], start: float, end: float) -> list[dict[str, Any]]:
    return [x for x in stalls if x["start"] < end and x["start"] + x["ms"] / 1000 > start]


def innermost(stall: dict[str, Any], frames: int) -> str:
    """The stall's most sampled stack, its innermost frames; a loop idle in select that did
    not run the callback it was given was waiting for the CPU or the interpreter lock."""
    if stall["gc_ms"] >= stall["ms"] / 2:
        return "gc"
    stack = stall["stacks"][0][1].split(" < ") if stall["stacks"] else []
    if not stack or stack[0].startswith("selectors:select"):
        if (stall.get("cpu_ms") or 0) < stall["ms"] / 3:
            return "idle loop, process not scheduled (waiting for a CPU)"
        return "idle loop, another thread of the process held the GIL"
    return " < ".join(stack[:frames])


def describe(stall: dict[str, Any], at: float) -> str:
    gc_note = f", gc {stall['gc_ms']:.0f}" if stall["gc_ms"] else ""
    return (f"{stall['ms']:.0f} ms at {(stall['start'] - at) * 1000:+.0f}{gc_note}"
            f" [{innermost(stall, 3)}]")


def explain(woken: list[tuple[str, float]], singles: list[float], paused: list[float],
            trace: list[tuple[float, float, str, str]], emulator: list[dict[str, Any]],
            operator: list[dict[str, Any]], count: int) -> list[str]:
    """For the slowest single wakes: when the emulator got the wake PATCH and the operator's
    Deployment PATCH and how long it served each, the watch's delivery to the bench, the loop
    stalls of the emulator and the operator in the wake, and the bench process's GC; then the
    stalls of the whole phase, counted by the operator's innermost frames."""
    lines = []
    for i in sorted(range(len(singles)), key=lambda j: -singles[j])[:count]:
        name, sent = woken[i]
        end = sent + singles[i]
        mine = [r for r in trace if sent - 0.01 <= r[0] <= end + 0.01 and name in r[3]]
        parts = [f"{r[2]} {r[3].rsplit('/', 2)[-2]}/{r[3].rsplit('/', 1)[-1]} "
                 f"in {(r[0] - sent) * 1000:.0f} served {(r[1] - r[0]) * 1000:.1f}"
                 for r in mine]
        ms = 1000
        lines.append(f"#{i + 1} {name}: {singles[i] * ms:.0f} ms; " + "; ".join(parts)
                     + f"; seen {singles[i] * ms:.0f}; bench GC {paused[i] * ms:.0f}")
        for who, stalls in (("emulator", emulator), ("operator", operator)):
            inside = overlapping(stalls, sent, end)
            if inside:
                lines.append(f"    {who} loop stalls: "
                             + "; ".join(describe(x, sent) for x in inside))
    for who, stalls in (("operator", operator), ("emulator", emulator)):
        if not stalls:
            continue
        frames: dict[str, list[float]] = {}
        for stall in stalls:
            frames.setdefault(innermost(stall, 2), []).append(stall["ms"])
        lines.append(f"{who} loop stalls in the phase: {len(stalls)}, "
                     f"{sum(x['ms'] for x in stalls):.0f} ms; by innermost frames:")
        for key, spans in sorted(frames.items(), key=lambda kv: -sum(kv[1]))[:8]:
            lines.append(f"    {len(spans)} x, max {max(spans):.0f} ms: {key}")
    return lines


def server_view(woken: list[tuple[str, float]], trace: list[tuple[float, float, str, str]]
                ) -> list[float]:
    """Per single wake, as the API server saw it: from its wake PATCH reaching the handler to
    the handler's answer to the operator's Deployment PATCH that followed (replicas 1 stored).
    The bench's own request and watch share the emulator's process: a stall of that process's
    other threads delays what the bench sees, not what the operator did."""
    found = []
    for name, sent in woken:
        wake = next((r for r in trace if r[2] == "PATCH" and r[0] >= sent - 0.01
                     and r[3].endswith(f"/editenvironments/{name}")), None)
        if wake is None:
            continue
        scale = next((r for r in trace if r[2] == "PATCH" and r[0] >= wake[0]
                      and r[3].endswith(f"/deployments/{name}-editor")), None)
        if scale is not None:
            found.append(scale[1] - wake[0])
    return found


def calls_per_wake(woken: list[tuple[str, float]], trace: list[tuple[float, float, str, str]],
                   pool: set[str]) -> float:
    """Requests the operator made per single wake: those about the woken environment in the
    second after its wake request (the request itself excluded), and the Events posted in that
    second (each request counted once)."""
    if not woken:
        return float("nan")
    total = 0
    for start, _, verb, url in trace:
        about = next((x for x in pool if x in url), None)
        if about is None and not (verb == "POST" and url.endswith("/events")):
            continue
        if any(sent <= start < sent + 1.0 and about in (None, name) for name, sent in woken):
            total += 1
    return (total - len(woken)) / len(woken)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--idle-timeout", type=int, default=60,
                        help="spec.idleTimeout of the environments (s)")
    parser.add_argument("--asleep-window", type=float, default=300.0,
                        help="seconds all sleep while SQS calls and CPU are counted (one "
                             "drift interval: every environment's drift tick is in it)")
    # 150 wakes (a p99 of 50 was their maximum), spread over ~3 minutes: they meet drift
    # ticks, sleep deadlines (the pool's own, after idleTimeout) and queue polls as production's
    # would, not one second of whatever ran then.
    parser.add_argument("--singles", type=int, default=150, help="sequential single wakes")
    parser.add_argument("--singles-every", type=float, default=1.2,
                        help="mean seconds between single wakes (0: back to back)")
    parser.add_argument("--singles-pool", type=int, default=50,
                        help="environments the single wakes take turns on (each is woken "
                             "again once asleep)")
    parser.add_argument("--explain", type=int, default=5,
                        help="slowest single wakes to explain (emulator request times, loop "
                             "stalls of the emulator and the operator, GC)")
    parser.add_argument("--available", type=int, default=10,
                        help="single wakes measured up to an available pod (kubelet)")
    parser.add_argument("--stall-operator", type=float, default=0.0, metavar="S",
                        help="a check of the burst figure: the operator is stopped (SIGSTOP) "
                             "for S seconds from the first wake request")
    parser.add_argument("--profile", metavar="DIR",
                        help="py-spy samples of the operator per phase into DIR (raw format)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    # This process hosts the emulator, whose store and watch history are a long-lived heap of
    # ~1M objects: a full collection walked all of it, 470 ms of a stopped emulator (a single
    # wake's Deployment PATCH waited through one). A real API server's Go collector runs
    # concurrently; the operator's own policy (freeze what survives) keeps pauses short here.
    FreezeAfterFull().install()
    logging.getLogger("webordinary.operator.looplag").setLevel(logging.ERROR)  # kept, not logged

    kube = start_kube_api([ROOT / "crds"])
    # moto in a process of its own, counting SQS calls itself (bench/motocount.py): a counting
    # proxy here forwarded each of the operator's ~17 GetQueueAttributes a second through the
    # process that hosts the emulator, whose loop then waited for the interpreter lock.
    moto = subprocess.Popen([sys.executable, "-P", str(ROOT / "bench" / "motocount.py")],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert moto.stdout is not None
    moto_url = moto.stdout.readline().strip()
    for key, value in FAKE_CREDENTIALS.items():
        os.environ.setdefault(key, value)
    request(f"{kube.url}/api/v1/namespaces", "POST",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    request(f"{kube.url}/apis/storage.k8s.io/v1/storageclasses", "POST",
            {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
             "metadata": {"name": "efs-sc"}, "provisioner": "efs.csi.aws.com"})
    env = dict(os.environ)
    env.update({
        "WEBORDINARY_OPERATOR_KUBE_API_URL": kube.url,
        "WEBORDINARY_OPERATOR_SQS_ENDPOINT_URL": moto_url,
        "WEBORDINARY_OPERATOR_METRICS_PORT": "null",
        "WEBORDINARY_OPERATOR_LIVENESS_PORT": "null",
        "WEBORDINARY_OPERATOR_LOOP_STALL_REPORT_MS": str(STALL_MS),
        "WEBORDINARY_OPERATOR_LOG_LEVEL": os.environ.get(
            "WEBORDINARY_OPERATOR_LOG_LEVEL", "WARNING"),
    })
    log = tempfile.NamedTemporaryFile(  # noqa: SIM115 (lives as long as the operator)
        prefix="bench-lifecycle-", suffix=".log", delete=False)
    operator = subprocess.Popen([sys.executable, "-m", "webordinary.operator"], env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    proc = psutil.Process(operator.pid)
    path = f"{kube.url}/apis/{API_VERSION}/namespaces/{NAMESPACE}/{PLURAL}"
    n, idle = args.n, args.idle_timeout
    rows: list[tuple[str, str, str]] = []
    state = Path(tempfile.mkdtemp(prefix="bench-lifecycle-"))
    try:
        time.sleep(2.0)
        watcher = DeploymentWatcher(
            f"{kube.url}/apis/apps/v1/namespaces/{NAMESPACE}/deployments")
        ids = [f"u{i:04d}" for i in range(n)]
        names = [naming.environment_name("bench", "site", uid) for uid in ids]

        def create(pair: tuple[str, str]) -> None:
            uid, name = pair
            request(path, "POST", {
                "apiVersion": API_VERSION, "kind": KIND,
                "metadata": {"name": name, "namespace": NAMESPACE},
                "spec": {"clientId": "bench", "projectId": "site", "userId": uid,
                         "repository": {"url": "https://example.com/site.git"},
                         "idleTimeout": "2h"},  # nothing sleeps while the rest is created
            })

        started = time.monotonic()
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(create, zip(ids, names, strict=True)))
        wait(lambda: all(watcher.now("replicas", x) is not None for x in names), 600, 0.5)
        provisioned = time.monotonic() - started

        # The bench plays the volume provisioner (EFS binds at once); the kubelet runs later.
        def bind(name: str) -> None:
            claim = f"{kube.url}/api/v1/namespaces/{NAMESPACE}/persistentvolumeclaims/" \
                    f"{name}-workspace"
            with contextlib.suppress(OSError):
                request(f"{claim}/status", "PATCH", {"status": {"phase": "Bound"}},
                        "application/merge-patch+json")

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(bind, names))

        # The idle timeout (a spec change: a full reconcile each) with an activity stamp, so
        # that none sleeps before all are reconciled with it.
        def shorten(name: str) -> None:
            body = {**activity_patch(datetime.now(UTC)), "spec": {"idleTimeout": f"{idle}s"}}
            request(f"{path}/{name}", "PATCH", body, "application/merge-patch+json")

        shortened = time.time()
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(shorten, names))
        wait(lambda: reconciled(path) >= n, 600, 2.0)

        # Sleep precision: one activity stamp each (ms precision, sent as fast as a pooled
        # client can: the deadlines coincide), then watch them fall asleep at stamp + idle.
        calls_sleep_start = api_calls(kube)
        verbs_sleep_start = kube.request_counts()
        with profiling(args.profile, proc.pid, "stamps"):
            stamped = send_stamps(path, names, "activity")["stamps"]
        last_stamp = max(stamped.values())
        # From before the operator's earliest read ahead (at most 8 s before a deadline).
        time.sleep(max(0.0, min(stamped.values()) + idle - 10.0 - time.time()))
        cpu_deadlines = cpu_seconds(proc)
        with profiling(args.profile, proc.pid, "deadlines"):
            wait(lambda: all(watcher.now("replicas", x) == 0 for x in names),
                 last_stamp - time.time() + idle + 60, 0.5)
        errors = []
        early = 0  # asleep before their stamp's deadline could come: the shortening's came first
        for name in names:
            first = watcher.first("replicas", name, 0, shortened)
            if first is not None and first < stamped[name] + idle / 2:
                early += 1  # the shortening's reconciles outlasted idleTimeout: a loaded run
                continue
            slept = watcher.first("replicas", name, 0, stamped[name])
            if slept is not None:
                errors.append(slept - (stamped[name] + idle))
        asleep = sum(1 for x in names if watcher.now("replicas", x) == 0)
        time.sleep(3.0)  # the status writes that follow the last scale-down
        per_deadline = (api_calls(kube) - calls_sleep_start) / n
        per_deadline_verbs = {verb: round((count - verbs_sleep_start.get(verb, 0)) / n, 2)
                              for verb, count in kube.request_counts().items()
                              if verb != "WATCH" and count != verbs_sleep_start.get(verb, 0)}
        deadline_cpu = cpu_seconds(proc) - cpu_deadlines

        # All asleep: count SQS calls and operator CPU over a window (longer than the poll).
        # The operator looks at the sleeping queues in batches on a grid of whole seconds of
        # the (system-wide) monotonic clock: the window opens and closes half-way between two
        # points, or one point's batch (n/60 looks) may be counted twice at its ends.
        time.sleep(5.0 + (0.5 - time.monotonic() % 1.0) % 1.0)
        before = sqs_counts(moto_url)
        cpu_before = proc.cpu_times()
        window_start = time.monotonic()
        with profiling(args.profile, proc.pid, "asleep"):
            time.sleep(args.asleep_window)
        window = time.monotonic() - window_start
        cpu_after = proc.cpu_times()
        after = sqs_counts(moto_url)
        calls = {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
        # ListQueues is the operator's one shared listing for drift ticks (pages of 1,000
        # queues, whoever is asleep); the rest are calls about one environment's own queue.
        shared = {k: v for k, v in calls.items() if k == "ListQueues"}
        per_env_hour = (sum(calls.values()) - sum(shared.values())) / n / window * 3600
        shared_hour = sum(shared.values()) / window * 3600
        idle_cpu = 100 * ((cpu_after.user - cpu_before.user)
                          + (cpu_after.system - cpu_before.system)) / window

        # Single wakes, one at a time: request -> spec.replicas 1, each on an environment of
        # the pool that is asleep (spread out, they meet what production meets meanwhile).
        pool = names[:min(args.singles, args.singles_pool)]
        singles: list[float] = []
        woken: list[tuple[str, float]] = []  # (environment, request sent) per measured wake
        paused: list[float] = []  # this process's GC pause within each single wake
        pauses = Pauses()
        gc.callbacks.append(pauses)
        emulator_stalls = StallReporter(kube.loop, STALL_MS / 1000, loop_thread=kube.thread_id)
        emulator_stalls.start()
        operator.send_signal(signal.SIGUSR1)  # the operator's stall reports on
        kube.trace(True)
        jitter = random.Random(7)
        singles_start = time.time()
        for k in range(args.singles):
            name = pool[k % len(pool)]
            if not wait(lambda name=name: watcher.now("replicas", name) == 0, 180, 0.05):
                continue
            if args.singles_every:
                time.sleep(args.singles_every * jitter.uniform(0.5, 1.5))
            sent = time.time()
            request(f"{path}/{name}", "PATCH", wake_patch(datetime.now(UTC)),
                    "application/merge-patch+json")
            if wait(lambda name=name, sent=sent: watcher.first("replicas", name, 1, sent)
                    is not None, 10,
                    0.002):
                singles.append((watcher.first("replicas", name, 1, sent) or sent) - sent)
                paused.append(pauses.within(sent, sent + singles[-1]))
                woken.append((name, sent))
        singles_window = time.time() - singles_start
        time.sleep(1.0)
        trace = kube.trace(False)
        operator.send_signal(signal.SIGUSR1)  # off
        emulator_stalls.stop()
        gc.callbacks.remove(pauses)
        explained = explain(woken, singles, paused, trace, emulator_stalls.records,
                            operator_stalls(log.name), args.explain)
        per_wake = calls_per_wake(woken, trace, set(pool))
        served = server_view(woken, trace)

        # With the devkit kubelet (pause-like pods): request -> available.
        stop_kubelet = None
        available: list[float] = []
        if args.available:
            _, stop_kubelet = run_kubelet(kube.url, state)
            time.sleep(3.0)  # it starts pods of the environments woken just above
            for name in names[len(pool):len(pool) + args.available]:
                sent = time.time()
                request(f"{path}/{name}", "PATCH", wake_patch(datetime.now(UTC)),
                        "application/merge-patch+json")
                if wait(lambda name=name, sent=sent: watcher.first("available", name, 1, sent),
                        30, 0.01):
                    available.append((watcher.first("available", name, 1, sent) or sent) - sent)
            stop_kubelet()

        # Simultaneous wakes of all the others.
        rest = names[len(pool) + args.available:]
        wait(lambda: all(watcher.now("replicas", x) == 0 for x in rest), 30, 0.2)
        cpu_burst = cpu_seconds(proc)
        cpu_emulator = cpu_seconds(psutil.Process())
        calls_burst = api_calls(kube)
        with profiling(args.profile, proc.pid, "burst"), \
                profiling(args.profile, os.getpid(), "burst-emulator"):
            if args.stall_operator:
                operator.send_signal(signal.SIGSTOP)
                threading.Timer(args.stall_operator, operator.send_signal,
                                (signal.SIGCONT,)).start()
            report = send_stamps(path, rest, "wake")
            burst_start, last_ack = report["first"], report["last_ack"]
            wait(lambda: all(watcher.now("replicas", x) == 1 for x in rest), 60, 0.1)
        woke = [watcher.first("replicas", x, 1, burst_start) for x in rest]
        time.sleep(2.0)
        burst_cpu = cpu_seconds(proc) - cpu_burst
        burst_emulator_cpu = cpu_seconds(psutil.Process()) - cpu_emulator
        burst_calls = (api_calls(kube) - calls_burst - len(rest)) / max(1, len(rest))
        burst_done = [t - burst_start for t in woke if t is not None]
    finally:
        operator.terminate()
        try:
            operator.wait(timeout=20)
        except subprocess.TimeoutExpired:
            operator.kill()
        kube.stop()
        moto.kill()

    ms = 1000.0
    lag = max(burst_done, default=0.0) - (last_ack - burst_start)
    rows = [
        ("environments", f"{n}", f"idleTimeout {idle} s, drift 300 s, wake poll 60 s"),
        ("created and reconciled", f"{provisioned:.1f} s", ""),
        ("single wake -> replicas 1 p50", f"{percentile(singles, 0.5) * ms:.0f} ms",
         f"{len(singles)} wakes in {singles_window:.0f} s on {len(pool)} environments"),
        ("single wake -> replicas 1 p99", f"{percentile(singles, 0.99) * ms:.0f} ms",
         "target < 100 ms; slowest (wake #: ms, of which the bench process's GC) " + ", ".join(
             f"{i + 1}: {t * ms:.0f}, {paused[i] * ms:.0f}" for i, t in sorted(
                 enumerate(singles), key=lambda x: -x[1])[:3])),
        ("single wake -> replicas 1 max", f"{max(singles, default=float('nan')) * ms:.0f} ms",
         f"wakes over 50 / 100 ms: {sum(t > 0.05 for t in singles)} / "
         f"{sum(t > 0.1 for t in singles)}"),
        ("single wake, API server's view p50", f"{percentile(served, 0.5) * ms:.0f} ms",
         f"{len(served)} wakes: the emulator got the wake PATCH -> it answered the operator's "
         "Deployment PATCH to replicas 1 (no client or bench watch in it)"),
        ("single wake, API server's view p99", f"{percentile(served, 0.99) * ms:.0f} ms",
         f"max {max(served, default=float('nan')) * ms:.0f} ms; over 50 / 100 ms: "
         f"{sum(t > 0.05 for t in served)} / {sum(t > 0.1 for t in served)}"),
        ("single wake -> available p50", f"{percentile(available, 0.5) * ms:.0f} ms",
         f"{len(available)} wakes, devkit kubelet (1 s sync) + pause pod"),
        ("single wake -> available p99", f"{percentile(available, 0.99) * ms:.0f} ms", ""),
        (f"{len(rest)} simultaneous wakes: all at replicas 1",
         f"{max(burst_done):.2f} s" if len(burst_done) == len(rest) else "missed",
         f"{len(burst_done)}/{len(rest)} by {max(burst_done, default=0):.2f} s; from the first "
         "wake request sent (another process) to the last Deployment at replicas 1 (the "
         "bench's watch); target < 5 s"),
        ("  last wake request answered", f"{last_ack - burst_start:.2f} s",
         "the emulator's 200 to the sender's last merge patch"),
        ("  operator's lag after that", f"{lag:+.2f} s", "last replicas 1 - last answer"),
        ("API calls per wake (operator)", f"{per_wake:.1f}",
         "emulator's requests about the woken environment and Events, in the second after "
         "each wake request (that PATCH excluded)"),
        ("API calls per deadline (operator)", f"{per_deadline:.1f}",
         f"emulator's count from the activity stamps until all slept: {per_deadline_verbs}"),
        ("simultaneous wakes: operator CPU", f"{burst_cpu:.2f} s",
         f"{burst_cpu / max(1, len(rest)) * ms:.1f} ms per wake; "
         f"{burst_calls:.1f} API calls per wake (wake PATCH excluded)"),
        ("simultaneous wakes: emulator CPU", f"{burst_emulator_cpu:.2f} s",
         f"{burst_emulator_cpu / max(1, len(rest)) * ms:.1f} ms per wake; the bench process "
         "(the emulator, the watch that timestamps), until 2 s after the last replicas 1"),
        ("deadlines: operator CPU", f"{deadline_cpu:.2f} s",
         f"{deadline_cpu / n * ms:.1f} ms per deadline (10 s before the first to 3 s after "
         "the last sleep)"),
        ("sleep - deadline p50", f"{percentile(errors, 0.5):+.2f} s",
         f"{asleep}/{n} asleep; deadline = last activity + idleTimeout"
         + (f"; {early} left out: asleep before their stamp (run invalid: too loaded)"
            if early else "")),
        ("sleep - deadline p99", f"{percentile(errors, 0.99):+.2f} s", "target within 5 s"),
        ("sleep - deadline min / max",
         f"{min(errors):+.2f} / {max(errors):+.2f} s" if errors else "-", ""),
        ("SQS calls per sleeping env per hour", f"{per_env_hour:.1f}",
         f"target <= 60; {json.dumps(calls, sort_keys=True)} in {window:.0f} s"),
        ("SQS shared queue listing per hour", f"{shared_hour:.0f}",
         f"ListQueues for drift ticks, not per environment ({shared_hour / n:.2f} per env)"),
        (f"operator CPU, all asleep ({window:.0f} s)", f"{idle_cpu:.1f} %",
         "of one core; target < 2 %"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"\nlifecycle benchmark (shared 2-core machine: numbers are noisy; log {log.name})")
    for label, value, note in rows:
        print(f"  {label:<{width}}  {value:>14}  {note}")
    print(f"\nwhere the slowest single wakes went (ms after the request; loop stalls over "
          f"{STALL_MS} ms)")
    for line in explained:
        print(f"  {line}")


if __name__ == "__main__":
    main()
