"""Editor benchmark: interrupt latency, warm start -> ready, new-session preview, RSS.

Runs the real editor process (`python -m webordinary.editor`) against moto SQS, a local bare
git remote, the real Claude Code CLI talking to the scripted Messages API stand-in, and real
`astro dev` previews of the fixture site. Prints one table.

Also: result latency of an edit (command sent -> result on the output queue) with and
without the push to the customer's repository after each edit (a local bare remote: the
push's own cost, without a network in between).

Targets: interrupt p95 < 1.5 s, ready < 5 s, new-session preview < 4 s; with the split pod
(customer code in the preview supervisor's process, keys in the credential proxy's) the
new-session preview at most 20 % slower than in one process. `--split-only` runs just the
split-pod rows (and the proxy's added latency per API request).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.editor.harness import Editor, Rig, command
from webordinary.devkit.aws import start_moto
from webordinary.devkit.kubelet import free_port
from webordinary.devkit.messages_api import MessagesAPI, stall, text, tools, write


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


def rss_mib(pid: int) -> float:
    """Resident memory of the editor and all its descendants (CLI, dev servers)."""
    root = psutil.Process(pid)
    total = 0
    for process in [root, *root.children(recursive=True)]:
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total / 2**20


def status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            response.read(1)
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def first_byte(editor: Editor, path: str, timeout: float = 60.0) -> tuple[float, float]:
    """Seconds until the preview answers 200, and until the session was known (non-404)."""
    url = f"http://127.0.0.1:{editor.preview_port()}{path}"
    began = time.monotonic()
    known = 0.0
    while time.monotonic() - began < timeout:
        status = status_of(url)
        if status != 404 and not known:
            known = time.monotonic()
        if status == 200:
            done = time.monotonic()
            return done - began, done - (known or began)
        time.sleep(0.05)
    raise TimeoutError(f"{path} never answered 200 (last {status}):\n{editor.log()[-3000:]}")


def measure_interrupts(rig: Rig, runs: int) -> list[float]:
    latencies = []
    rig.send(command("bench", "warmup", "Warm up"))
    rig.api.push(text("warm"))
    rig.results(1, timeout=60)
    for run in range(runs):
        rig.api.push(stall(), text("next one done"))
        ended = len(rig.api.stalls_ended)
        started = rig.api.stalls_started
        rig.send(command("bench", f"slow-{run}", f"Slow job {run}"))
        rig.api.wait_for(lambda s=started: rig.api.stalls_started > s, timeout=60)
        sent = time.time()
        rig.send(command("bench", f"fast-{run}", f"Fast job {run}"))
        rig.api.wait_for(lambda e=ended: len(rig.api.stalls_ended) > e, timeout=30)
        latencies.append(rig.api.stalls_ended[ended] - sent)
        rig.results(2, timeout=60)
    return latencies


def measure_results(rig: Rig, edits: int, push: bool) -> list[float]:
    """Seconds from sending an edit to its result, `edits` times, push after edit on/off."""
    rig.extra_env["WEBORDINARY_PUSH_AFTER_EDIT"] = "true" if push else "false"
    editor = rig.start_editor()
    thread = "pushon" if push else "pushoff"
    rig.api.push(text("warm"))
    rig.send(command(thread, f"{thread}-warm", "Warm up"))
    rig.results(1, timeout=60)
    latencies = []
    for run in range(edits):
        rig.api.push(tools(write(f"src/pages/{thread}-{run}.md", f"# Page {run}\n")),
                     text(f"Added page {run}."))
        sent = rig.send(command(thread, f"{thread}-{run}", f"Add page {run}"))
        [result] = rig.results(1, timeout=60)
        latencies.append(time.monotonic() - sent)
        assert result["status"] == "completed", result
        assert result.get("push", {}).get("state") == ("pushed" if push else "disabled"), result
    editor.terminate()
    time.sleep(6)  # the stopped editor's poll has ended
    return latencies


class _Done(Exception):
    """--split-only: the table is complete."""


def one_process_preview(rig: Rig, rows: list[tuple[str, str, str]], sessions: int) -> float:
    """Today's preview (dev servers in the editor's process tree): the baseline, median of
    `sessions` new sessions (one sample is within the noise of the 20 % bound)."""
    editor = rig.start_editor()
    time.sleep(3)
    pid = editor.process.pid if editor.process else 0
    totals = []
    for index in range(sessions):
        thread = f"o{index}"
        rig.api.push(text("Looked at it."))
        rig.send(command(thread, f"one-{thread}", "Have a look"))
        totals.append(first_byte(editor, f"/session/{thread}/")[0])
        rig.results(1, timeout=60)
        time.sleep(1)
        if index == 0:
            rows.append(("one process: RSS editor + children, 1 preview",
                         f"{rss_mib(pid):.0f} MiB", "includes Claude Code CLI"))
    total = statistics.median(totals)
    rows.append(("one process: new-session preview, command sent -> first 200 byte",
                 f"{total:.2f} s", f"median of {sessions}: " + samples(totals)))
    editor.terminate()
    time.sleep(6)
    return total


def samples(values: list[float]) -> str:
    return " ".join(f"{value:.2f}" for value in values)


def spawn(module: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        return subprocess.Popen([sys.executable, "-m", module], env=env, stdout=sink,
                                stderr=subprocess.STDOUT, start_new_session=True)


def tree_rss(pids: list[int]) -> float:
    return sum(rss_mib(pid) for pid in pids)


def wait_http(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while status_of(url) != 200:
        if time.monotonic() > deadline:
            raise TimeoutError(url)
        time.sleep(0.05)


def proxy_overhead(api: MessagesAPI, proxy_url: str, token: str, count: int = 60) -> float:
    """Median extra seconds per Messages API request through the credential proxy."""
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()

    def timed(url: str, key: str) -> float:
        request = urllib.request.Request(f"{url}/v1/messages/count_tokens", data=body,
                                         headers={"x-api-key": key,
                                                  "Content-Type": "application/json"})
        began = time.perf_counter()
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
        return time.perf_counter() - began

    direct, proxied = [], []
    for _ in range(count):
        direct.append(timed(api.base_url, "sk-test"))
        proxied.append(timed(proxy_url, token))
    return statistics.median(proxied) - statistics.median(direct)


def measure_split(rig: Rig, rows: list[tuple[str, str, str]], baseline: float | None,
                  sessions: int = 3) -> None:
    """The split pod: supervisor and credential proxy as their own processes."""
    base = rig.base
    ports = {name: free_port() for name in ("router", "control", "smetrics", "proxy", "pmetrics")}
    token_file = base / "run" / "token"
    common = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "HOME")}
    proxy = spawn("webordinary.editor.credentials", {
        **common, "ANTHROPIC_API_KEY": "sk-test",
        "WEBORDINARY_CREDENTIALS_API_BASE_URL": rig.api.base_url,
        "WEBORDINARY_CREDENTIALS_PORT": str(ports["proxy"]),
        "WEBORDINARY_CREDENTIALS_METRICS_PORT": str(ports["pmetrics"]),
        "WEBORDINARY_CREDENTIALS_TOKEN_FILE": str(token_file),
        "WEBORDINARY_ENVIRONMENT": "bench"}, base / "proxy.log")
    supervisor = spawn("webordinary.editor.supervisor", {
        **common, "WEBORDINARY_PREVIEW_SESSIONS": str(rig.workspace / "sessions"),
        "WEBORDINARY_PREVIEW_HOST": "127.0.0.1",
        "WEBORDINARY_PREVIEW_PORT": str(ports["router"]),
        "WEBORDINARY_PREVIEW_CONTROL_PORT": str(ports["control"]),
        "WEBORDINARY_PREVIEW_METRICS_PORT": str(ports["smetrics"]),
        "WEBORDINARY_PREVIEW_TMP": str(base / "preview-tmp")}, base / "supervisor.log")
    (base / "preview-tmp").mkdir(exist_ok=True)
    try:
        wait_http(f"http://127.0.0.1:{ports['pmetrics']}/healthz")
        wait_http(f"http://127.0.0.1:{ports['smetrics']}/healthz")
        overhead = proxy_overhead(rig.api, f"http://127.0.0.1:{ports['proxy']}",
                                  token_file.read_text().strip())
        rows.append(("credential proxy: added latency per API request (median)",
                     f"{overhead * 1000:.1f} ms", "count_tokens, loopback"))
        rig.extra_env.update({
            "WEBORDINARY_EDITOR_SUPERVISOR_URL": f"http://127.0.0.1:{ports['control']}",
            "WEBORDINARY_EDITOR_CREDENTIALS_URL": f"http://127.0.0.1:{ports['proxy']}",
            "WEBORDINARY_EDITOR_CREDENTIALS_TOKEN_FILE": str(token_file),
            "WEBORDINARY_PREVIEW_PORT": str(ports["router"]),
        })
        editor = rig.start_editor()
        time.sleep(3)
        pids = [p for p in (editor.process.pid if editor.process else 0, supervisor.pid,
                            proxy.pid) if p]
        rows.append(("split pod: RSS editor + supervisor + proxy, 0 previews",
                     f"{tree_rss(pids):.0f} MiB", "includes the warm standby"))
        previews = []
        for index in range(max(sessions, 2)):
            thread = f"s{index}"
            rig.api.push(text("Looked at it."))
            rig.send(command(thread, f"split-{thread}", "Have a look"))
            previews.append(first_byte(editor, f"/session/{thread}/"))
            rig.results(1, timeout=60)
            time.sleep(1)
            if index < 2:
                rows.append((f"split pod: RSS editor + supervisor + proxy, {index + 1} "
                             "preview(s)", f"{tree_rss(pids):.0f} MiB",
                             "includes Claude Code CLI"))
        totals = [each[0] for each in previews[:sessions]]
        total = statistics.median(totals)
        from_known = statistics.median(each[1] for each in previews[:sessions])
        note = ""
        if baseline:
            change = (total - baseline) / baseline * 100
            note = (f"{change:+.0f} % vs one process " + ("ok" if change <= 20 else "MISSED")
                    + f"; median of {sessions}: " + samples(totals))
        rows.append(("split pod: new-session preview, command sent -> first 200 byte",
                     f"{total:.2f} s", note))
        rows.append(("split pod: new-session preview, session known -> first 200 byte",
                     f"{from_known:.2f} s", ""))
        editor.terminate()
    finally:
        for process in (supervisor, proxy):
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
        for key in ("WEBORDINARY_EDITOR_SUPERVISOR_URL", "WEBORDINARY_EDITOR_CREDENTIALS_URL",
                    "WEBORDINARY_EDITOR_CREDENTIALS_TOKEN_FILE", "WEBORDINARY_PREVIEW_PORT"):
            rig.extra_env.pop(key, None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10, help="interrupt runs")
    parser.add_argument("--starts", type=int, default=3, help="warm start runs")
    parser.add_argument("--edits", type=int, default=10, help="edits with and without push")
    parser.add_argument("--sessions", type=int, default=3,
                        help="new sessions per side of the one-process vs split comparison")
    parser.add_argument("--split-only", action="store_true",
                        help="only the one-process vs split-pod preview rows and proxy latency")
    args = parser.parse_args()
    latencies: list[float] = []

    moto = start_moto()
    api = MessagesAPI(demo=False).start()
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="bench-editor-") as tmp:
        rig = Rig(base=Path(tmp), moto=moto, api=api, max_receive_count=5)
        rig.enable_previews()
        # A stopped editor's last long poll stays open in moto (it may still take a message):
        # short polls let the restarts below settle quickly.
        rig.extra_env["WEBORDINARY_EDITOR_POLL_WAIT_SECONDS"] = "5"
        try:
            if args.split_only:
                baseline = one_process_preview(rig, rows, args.sessions)
                measure_split(rig, rows, baseline, args.sessions)
                raise _Done
            editor = rig.start_editor()
            idle = rss_mib(editor.process.pid if editor.process else 0)
            rows.append(("RSS editor, 0 previews (idle, no CLI yet)", f"{idle:.0f} MiB", ""))

            latencies = measure_interrupts(rig, args.runs)
            p50, p95 = percentile(latencies, 0.5), percentile(latencies, 0.95)
            rows.append(("interrupt latency p50", f"{p50 * 1000:.0f} ms", ""))
            rows.append(("interrupt latency p95", f"{p95 * 1000:.0f} ms",
                         "ok" if p95 < 1.5 else "MISSED (< 1.5 s)"))

            editor.terminate()
            readies = []
            for _ in range(args.starts):
                editor = rig.start_editor(ready=False)
                began = editor.started_at
                url = ""
                while True:
                    if "previews on port" in editor.log():
                        url = f"http://127.0.0.1:{editor.preview_port()}"
                        break
                    time.sleep(0.02)
                metrics = int(editor.log().split("health and metrics on port ")[1].split()[0])
                while status_of(f"http://127.0.0.1:{metrics}/readyz") != 200:
                    time.sleep(0.02)
                readies.append(time.monotonic() - began)
                assert url
                editor.terminate()
            time.sleep(6)  # the stopped editors' polls have ended
            ready = statistics.median(readies)
            rows.append(("start -> ready (warm volume, median)", f"{ready:.2f} s",
                         "ok" if ready < 5 else "MISSED (< 5 s)"))

            editor = rig.start_editor()
            time.sleep(3)  # steady state: the SDK import right after start is over
            pid = editor.process.pid if editor.process else 0
            previews = []
            for index, thread in enumerate(("pa", "pb")):
                rig.api.push(text("Looked at it."))
                rig.send(command(thread, f"preview-{thread}", "Have a look"))
                total, from_known = first_byte(editor, f"/session/{thread}/")
                previews.append((total, from_known))
                rig.results(1, timeout=60)
                time.sleep(1)
                rows.append((f"RSS editor + children, {index + 1} preview(s)",
                             f"{rss_mib(pid):.0f} MiB", "includes Claude Code CLI"))
            total, from_known = previews[0]
            rows.append(("new-session preview: command sent -> first 200 byte",
                         f"{total:.2f} s", "ok" if total < 4 else "MISSED (< 4 s)"))
            rows.append(("new-session preview: session known -> first 200 byte",
                         f"{from_known:.2f} s", ""))
            editor.terminate()
            time.sleep(6)
            measure_split(rig, rows, total, args.sessions)
            time.sleep(6)

            rig.extra_env["WEBORDINARY_EDITOR_PREVIEWS_ENABLED"] = "false"
            without = measure_results(rig, args.edits, push=False)
            pushed = measure_results(rig, args.edits, push=True)
            for label, values in (("without push", without), ("with push after edit", pushed)):
                rows.append((f"edit result latency p50, {label}",
                             f"{percentile(values, 0.5):.2f} s", ""))
                rows.append((f"edit result latency p95, {label}",
                             f"{percentile(values, 0.95):.2f} s", ""))
            cost = percentile(pushed, 0.5) - percentile(without, 0.5)
            rows.append(("push after edit adds (p50 difference)", f"{cost * 1000:.0f} ms",
                         "local bare remote"))
        except _Done:
            pass
        finally:
            rig.close()
            api.stop()
            moto.stop()

    width = max(len(r[0]) for r in rows)
    print(f"{'measure'.ljust(width)}  {'value':>10}  note")
    print(f"{'-' * width}  {'-' * 10}  ----")
    for name, value, note in rows:
        print(f"{name.ljust(width)}  {value:>10}  {note}")
    print(f"load average at the end: {', '.join(f'{v:.1f}' for v in psutil.getloadavg())} "
          f"on {psutil.cpu_count()} CPUs")
    if latencies:
        print(f"(interrupt runs: {len(latencies)}: "
              + ", ".join(f"{v * 1000:.0f}" for v in latencies) + " ms)")


if __name__ == "__main__":
    main()
