"""Hermes benchmark: what mail costs, how the event loop holds up, how results scale.

Run: `./dev bench hermes [--seconds S] [--mails N] [--environments N] [--sleeping N]`.
1. parse+route: mails per CPU-second on one core through the pure path (parse, thread, strip
   quotes, authenticate, route, plan) over the email corpus. Target >= 2,000.
2. Hostile mails (tests/plugins/hostile.py): CPU seconds and peak memory of each one's parse in
   a parse worker, as Hermes runs it (authentication first, size rules). Target: the worst
   <= 1 s and <= 64 MiB.
3. At scale, on moto and the strict Kubernetes API emulator (each in its own process, so they
   do not share Hermes' interpreter): `--environments` awake environments and `--sleeping`
   sleeping ones. Measured: result -> reply latency p50/p99 (result sent to an output queue ->
   reply handed to SES; target p99 < 2 s), SQS calls per sleeping environment per hour (after
   the one drain at start), and the event loop's stall p99 while the hostile corpus arrives on
   the inbound queue (a 5 ms ticker's lateness; target < 50 ms).
4. mail -> command latency (first mail creates the environment; then steady state).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp
import boto3

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.plugins.hermes import (
    EMAILS,
    FROM_ADDRESS,
    ROUTING_YAML,
    OperatorStandIn,
    ses_notification,
)
from tests.plugins.hostile import CASES
from webordinary.contracts.messages import Result, ResultStatus
from webordinary.devkit.aws import FAKE_CREDENTIALS, start_moto
from webordinary.devkit.kubeapi import start_kube_api
from webordinary.hermes import auth
from webordinary.hermes.adapters.sqs import AsyncSqs
from webordinary.hermes.app import Running, start
from webordinary.hermes.auth import Verdict, Verdicts
from webordinary.hermes.decisions import Inbound, Limits, ReplyContext, decide
from webordinary.hermes.journal import CommandRecord
from webordinary.hermes.routing import load_routing
from webordinary.hermes.settings import HermesSettings
from webordinary.hermes.workers import ParseFailure, ParserPool, too_big

REPO = Path(__file__).resolve().parents[1]
NS = "webordinary"
TARGET_RATE = 2000.0
TARGET_CPU, TARGET_MIB = 1.0, 64.0
TARGET_STALL_MS, TARGET_P99_S = 50.0, 2.0
EE = f"/apis/webordinary.dev/v1alpha1/namespaces/{NS}/editenvironments"
REPLY_ID = re.compile(rb"Message-ID: <result-[a-z]+\.(cmd-[a-z0-9-]+)@")


def throughput(seconds: float) -> tuple[float, int]:
    """Mails per CPU-second through decide() (parse + route + plan) on one core."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    routing = load_routing(ROUTING_YAML)
    limits = Limits(own_addresses=frozenset({FROM_ADDRESS}))
    passing = Verdicts(spf=Verdict.PASS, dkim=Verdict.PASS, dmarc=Verdict.PASS)
    items = [Inbound(raw=p.read_bytes(), verdicts=passing, source="ses", delivery_id=p.name)
             for p in sorted(EMAILS.glob("*.eml"))]
    count = 0
    began = time.process_time()
    while time.process_time() - began < seconds:
        for item in items:
            decide(item, routing, limits, {})
        count += len(items)
    rate = count / (time.process_time() - began)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    return rate, count


async def hostile_costs() -> list[tuple[str, float, float, str]]:
    """(case, CPU s, peak MiB, outcome of the parse) for every hostile mail, one at a time."""
    pool = ParserPool(1, HermesSettings().parse_timeout_seconds, HermesSettings().parse_memory_mib)
    await pool.warm()
    rows: list[tuple[str, float, float, str]] = []
    max_bytes = HermesSettings().max_message_bytes
    try:
        for case in CASES:
            raw = case.raw()
            if not auth.check(case.verdicts).ok:
                rows.append((case.name, 0.0, 0.0, "not parsed (authentication failed)"))
                continue
            try:
                _, cost = await pool.parse(raw, too_big(raw, max_bytes))
                outcome = "headers only" if too_big(raw, max_bytes) else "parsed"
            except ParseFailure as exc:
                cpu, peak = (exc.cost.cpu_seconds, exc.cost.peak_bytes) if exc.cost else (0, 0)
                rows.append((case.name, cpu, peak / 2**20, f"failed: {exc.cause}"))
                continue
            rows.append((case.name, cost.cpu_seconds, cost.peak_bytes / 2**20, outcome))
    finally:
        pool.close()
    return rows


async def until(predicate: Any, within: float, step: float = 0.1) -> None:
    """Wait until predicate() is true or `within` seconds passed."""
    for _ in range(max(1, int(within / step))):
        if predicate():
            return
        await asyncio.sleep(step)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _serve(kind: str) -> tuple[subprocess.Popen[str], str]:
    """moto or the Kubernetes API emulator in a process of its own; returns it and its URL."""
    code = {
        "moto": "from webordinary.devkit.aws import start_moto\n"
                "m = start_moto(); print(m.endpoint_url, flush=True)\n",
        "kube": "import sys; from pathlib import Path\n"
                "from webordinary.devkit.kubeapi import start_kube_api\n"
                f"k = start_kube_api([Path({str(REPO / 'crds')!r})])\n"
                f"k.create_namespaces({NS!r}); print(k.url, flush=True)\n",
    }[kind] + "import threading; threading.Event().wait()\n"
    env = {**os.environ, **FAKE_CREDENTIALS}
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True, env=env)
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


class TimedMailer:
    """Delegates to Hermes' real mailer (SES on moto) and notes when each result reply left."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.sent_at: dict[str, float] = {}

    async def send(self, raw: bytes, sender: str, recipients: list[str]) -> str:
        answer = str(await self.inner.send(raw, sender, recipients))
        found = REPLY_ID.search(raw)
        if found:
            self.sent_at.setdefault(found.group(1).decode(), time.perf_counter())
        return answer


def _environment(name: str, user: str) -> dict[str, Any]:
    return {"apiVersion": "webordinary.dev/v1alpha1", "kind": "EditEnvironment",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"clientId": "ameliastamps", "projectId": "website", "userId": user,
                     "repository": {"url": "https://example.com/site.git"}}}


async def _populate(kube_url: str, moto_url: str, awake: int, sleeping: int
                    ) -> dict[str, dict[str, str]]:
    """EditEnvironments with status (phase, queue URLs) and their queues in moto."""
    sqs = boto3.client("sqs", endpoint_url=moto_url, region_name="us-east-1")
    names = [(f"ameliastamps-website-aw{i}", f"aw{i}", "Ready") for i in range(awake)]
    names += [(f"ameliastamps-website-zz{i}", f"zz{i}", "Sleeping") for i in range(sleeping)]
    names += [(f"ameliastamps-website-{u}", u, "Ready") for u in ("john", "sarah", "team")]

    def queues(name: str) -> dict[str, str]:
        return {role: sqs.create_queue(QueueName=f"webordinary-{role}-{name}")["QueueUrl"]
                for role in ("input", "output", "dlq")}

    with ThreadPoolExecutor(16) as pool:
        urls = dict(zip([n for n, _, _ in names],
                        pool.map(queues, [n for n, _, _ in names]), strict=True))
    connector = aiohttp.TCPConnector(limit=32)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def one(name: str, user: str, phase: str) -> None:
            async with session.post(kube_url + EE, json=_environment(name, user)) as response:
                assert response.status == 201, await response.text()
            patch = {"status": {"phase": phase, "queues": urls[name]}}
            async with session.patch(
                f"{kube_url}{EE}/{name}/status", data=json.dumps(patch),
                headers={"Content-Type": "application/merge-patch+json"},
            ) as response:
                assert response.status == 200, await response.text()

        await asyncio.gather(*(one(*n) for n in names))
    return urls


async def _ticker(lags: list[float], stop: asyncio.Event, busy: list[float] | None = None
                  ) -> None:
    """Lateness of a 5 ms sleep (what a waiting user sees), and how much CPU the loop's own
    thread spent in that time (Hermes' work on the loop, apart from the machine's load)."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        began, cpu = loop.time(), time.thread_time()
        await asyncio.sleep(0.005)
        lags.append(max(0.0, loop.time() - began - 0.005))
        if busy is not None:
            busy.append(time.thread_time() - cpu)


async def scale(awake: int, sleeping: int, samples: int, quiet: float) -> dict[str, Any]:
    moto_proc, moto_url = _serve("moto")
    kube_proc, kube_url = _serve("kube")
    tmp = Path(tempfile.mkdtemp(prefix="hermes-bench-"))
    running: Running | None = None
    try:
        for key, value in FAKE_CREDENTIALS.items():
            os.environ.setdefault(key, value)
        sqs = boto3.client("sqs", endpoint_url=moto_url, region_name="us-east-1")
        s3 = boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1")
        boto3.client("ses", endpoint_url=moto_url, region_name="us-east-1") \
            .verify_email_identity(EmailAddress=FROM_ADDRESS)
        s3.create_bucket(Bucket="bench-mail")
        inbound = sqs.create_queue(QueueName="bench-inbound")["QueueUrl"]
        began = time.perf_counter()
        urls = await _populate(kube_url, moto_url, awake, sleeping)
        populate_s = time.perf_counter() - began
        (tmp / "routing.yaml").write_text(ROUTING_YAML)
        settings = HermesSettings(
            namespace=NS, kube_api_url=kube_url, aws_endpoint_url=moto_url,
            inbound_queue_url=inbound, from_address=FROM_ADDRESS, s3_bucket="bench-mail",
            routing_file=tmp / "routing.yaml", metrics_host="127.0.0.1", metrics_port=0,
            ack_enabled=False, aws_threads=64,
        )
        running = await start(settings)
        hermes = running.hermes
        mailer = TimedMailer(hermes.mailer)
        hermes.mailer = mailer
        sqs_async = hermes.queues
        assert isinstance(sqs_async, AsyncSqs)
        await until(lambda: len(hermes.results.polling()) >= awake + 3, 120)
        await until(lambda: hermes.results.draining() == 0, 300)  # the sleeping ones' drain
        polling = len(hermes.results.polling())
        sleeping_urls = {u for n, q in urls.items() if "-website-zz" in n
                         for r, u in q.items() if r != "input"}
        awake_urls = {u for n, q in urls.items() if "-website-aw" in n
                      for r, u in q.items() if r != "input"}
        drain_calls = sum(sqs_async.calls[u] for u in sleeping_urls)
        # a quiet window: what polling costs per environment and hour, asleep and awake
        before = {u: sqs_async.calls[u] for u in sleeping_urls | awake_urls}
        began = time.perf_counter()
        idle_lags: list[float] = []
        stop = asyncio.Event()
        ticker = asyncio.create_task(_ticker(idle_lags, stop))
        await asyncio.sleep(quiet)
        stop.set()
        await ticker
        window = time.perf_counter() - began
        sleeping_per_hour = sum(sqs_async.calls[u] - before[u] for u in sleeping_urls) \
            / max(1, sleeping) * 3600 / window
        awake_per_hour = sum(sqs_async.calls[u] - before[u] for u in awake_urls) \
            / max(1, awake) * 3600 / window

        # result -> reply at scale
        awake_names = [n for n in urls if "-website-aw" in n]
        sent_at: dict[str, float] = {}
        for index in range(samples):
            name = random.choice(awake_names)
            command_id = f"cmd-bench-{index:05d}"
            hermes.journal.record_command(CommandRecord(
                command_id=command_id, thread_id="0123456789abcdef", environment=name,
                reply=ReplyContext(to="john@ameliastamps.com", subject="Re: bench",
                                   message_id=f"m{index}@ameliastamps.com"),
                queued_at=hermes.clock()))
            body = Result(command_id=command_id, session_id="0123456789abcdef",
                          status=ResultStatus.COMPLETED, summary="Done.").model_dump_json(
                              by_alias=True)
            sent_at[command_id] = time.perf_counter()
            for attempt in range(3):  # moto under a thousand long polls is sometimes slow
                try:
                    await sqs_async.send(urls[name]["output"], body)
                    break
                except (TimeoutError, aiohttp.ClientError):
                    if attempt == 2:
                        raise
            await asyncio.sleep(0.05)
        await until(lambda: len(mailer.sent_at) >= samples, 60)
        latencies = [mailer.sent_at[c] - t for c, t in sent_at.items() if c in mailer.sent_at]

        # the event loop while the hostile corpus arrives (built and stored beforehand, so
        # the ticker measures Hermes, not this benchmark)
        notes: list[str] = []
        for index, case in enumerate(CASES):
            raw = case.raw()
            verdicts = {k: str(getattr(case.verdicts, k).value)
                        for k in ("spf", "dkim", "dmarc", "spam", "virus")}
            if len(raw) > 150_000:  # SES hands large mail over through S3
                key = f"inbound/hostile-{index}"
                await asyncio.to_thread(s3.put_object, Bucket="bench-mail", Key=key, Body=raw)
                notes.append(ses_notification(None, message_id=f"hostile-{index}",
                                              s3=("bench-mail", key), verdicts=verdicts))
            else:
                notes.append(await asyncio.to_thread(
                    ses_notification, raw, message_id=f"hostile-{index}", verdicts=verdicts))
            del raw
        lags: list[float] = []
        busy: list[float] = []
        stop = asyncio.Event()
        ticker = asyncio.create_task(_ticker(lags, stop, busy))
        await asyncio.sleep(0.5)
        for note in notes:
            await asyncio.to_thread(sqs.send_message, QueueUrl=inbound, MessageBody=note)
        received = hermes.metrics.registry.get_sample_value

        def drained() -> bool:
            done = received("hermes_emails_received_total", {"source": "ses"}) or 0
            if done < len(CASES):
                return False
            attrs = sqs.get_queue_attributes(
                QueueUrl=inbound, AttributeNames=["ApproximateNumberOfMessages",
                                                  "ApproximateNumberOfMessagesNotVisible"])
            return all(v == "0" for v in attrs["Attributes"].values())

        for _ in range(600):
            if await asyncio.to_thread(drained):
                break
            await asyncio.sleep(0.2)
        stop.set()
        await ticker
        errors = hermes.metrics.registry.get_sample_value(
            "hermes_errors_total", {"stage": "results-poll"}) or 0
        return {
            "poll_errors": errors,
            "populate_s": populate_s, "polling": polling, "latencies": latencies,
            "samples": samples, "lags_ms": [lag * 1000 for lag in lags],
            "busy_ms": [b * 1000 for b in busy], "idle_lags_ms": [lag * 1000 for lag in idle_lags],
            "load": os.getloadavg()[0],
            "sleeping_calls_per_hour": sleeping_per_hour, "window_s": window,
            "drain_calls": drain_calls / max(1, sleeping),
            "awake_calls_per_hour": awake_per_hour,
        }
    finally:
        if running is not None:
            await running.close()
        for process in (moto_proc, kube_proc):
            process.terminate()
            process.wait(10)


async def latency(mails: int) -> tuple[float, list[float]]:
    """(first mail incl. environment creation, steady-state latencies) in seconds."""
    moto = start_moto()
    kube = start_kube_api([REPO / "crds"])
    kube.create_namespaces(NS)
    tmp = Path(tempfile.mkdtemp(prefix="hermes-bench-"))
    try:
        sqs = boto3.client("sqs", endpoint_url=moto.endpoint_url, region_name="us-east-1")
        boto3.client("ses", endpoint_url=moto.endpoint_url, region_name="us-east-1") \
            .verify_email_identity(EmailAddress=FROM_ADDRESS)
        inbound = sqs.create_queue(QueueName="bench-inbound")["QueueUrl"]
        (tmp / "routing.yaml").write_text(ROUTING_YAML)
        settings = HermesSettings(
            namespace=NS, kube_api_url=kube.url, aws_endpoint_url=moto.endpoint_url,
            inbound_queue_url=inbound, inbound_wait_seconds=20, from_address=FROM_ADDRESS,
            routing_file=tmp / "routing.yaml", metrics_host="127.0.0.1", metrics_port=0,
            ack_enabled=False,
        )
        running = await start(settings)
        operator = OperatorStandIn(kube.url, moto.endpoint_url, NS)
        op_task = asyncio.create_task(operator.run())
        template = (EMAILS / "gmail_new.eml").read_bytes()
        samples: list[float] = []
        first = 0.0
        for index in range(mails + 1):
            raw = template.replace(b"<CAJx8mK3p2Lr9vQ=", f"<bench{index}-".encode())
            body = ses_notification(raw, message_id=f"bench-{index}")
            began = time.perf_counter()
            await asyncio.to_thread(sqs.send_message, QueueUrl=inbound, MessageBody=body)
            await until(lambda: "ameliastamps-website-john" in operator.provisioned, 30,
                        0.005)
            url = operator.provisioned["ameliastamps-website-john"]["input"]
            answer = await asyncio.to_thread(sqs.receive_message, QueueUrl=url,
                                             WaitTimeSeconds=20, MaxNumberOfMessages=1)
            elapsed = time.perf_counter() - began
            [message] = answer["Messages"]
            await asyncio.to_thread(sqs.delete_message, QueueUrl=url,
                                    ReceiptHandle=message["ReceiptHandle"])
            if index == 0:
                first = elapsed
            else:
                samples.append(elapsed)
        op_task.cancel()
        await asyncio.gather(op_task, return_exceptions=True)
        await running.close()
        return first, samples
    finally:
        kube.stop()
        moto.stop()


def _row(metric: str, value: str, target: str = "") -> None:
    print(f"{metric:<58}{value:>14}  {target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--mails", type=int, default=20)
    parser.add_argument("--environments", type=int, default=1000)
    parser.add_argument("--sleeping", type=int, default=200)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--quiet", type=float, default=45.0,
                        help="seconds of idle polling measured (calls per environment)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    rate, count = throughput(args.seconds)
    costs = asyncio.run(hostile_costs())
    at_scale = asyncio.run(scale(args.environments, args.sleeping, args.samples,
                                   args.quiet))
    first, samples = asyncio.run(latency(args.mails))

    def ok(good: bool) -> str:
        return "OK" if good else "MISSED"

    print("Hermes benchmark")
    _row("metric", "value", "target")
    _row("parse+route, mails per CPU-second (one core, corpus)", f"{rate:.0f}",
         f">= {TARGET_RATE:.0f}  {ok(rate >= TARGET_RATE)}")
    _row("  mails processed", str(count))
    worst_cpu = max(costs, key=lambda r: r[1])
    worst_mem = max(costs, key=lambda r: r[2])
    _row(f"hostile corpus: worst CPU s ({worst_cpu[0]})", f"{worst_cpu[1]:.3f}",
         f"<= {TARGET_CPU:.0f}  {ok(worst_cpu[1] <= TARGET_CPU)}")
    _row(f"hostile corpus: worst peak MiB ({worst_mem[0]})", f"{worst_mem[2]:.1f}",
         f"<= {TARGET_MIB:.0f}  {ok(worst_mem[2] <= TARGET_MIB)}")
    for name, cpu, mib, outcome in sorted(costs, key=lambda r: -r[1]):
        _row(f"  {name} ({outcome})", f"{cpu:.3f} s {mib:5.1f} MiB")
    lags = at_scale["lags_ms"]
    stall = percentile(lags, 0.99) if lags else float("nan")
    _row("event-loop stall p99 ms, hostile corpus arriving", f"{stall:.1f}",
         f"< {TARGET_STALL_MS:.0f}  {ok(stall < TARGET_STALL_MS)}")
    _row("  stall max ms / ticks", f"{max(lags):.1f} / {len(lags)}")
    busy = at_scale["busy_ms"]
    _row("  loop thread CPU per tick p99 / max ms (Hermes' own work)",
         f"{percentile(busy, 0.99):.1f} / {max(busy):.1f}")
    idle = at_scale["idle_lags_ms"]
    _row("  same ticker, idle polling only: p99 / max ms",
         f"{percentile(idle, 0.99):.1f} / {max(idle):.1f}")
    _row("  machine load average (1 min) at the end", f"{at_scale['load']:.1f}")
    latencies = at_scale["latencies"]
    p99 = percentile(latencies, 0.99) if latencies else float("inf")
    _row(f"result -> reply p50 s ({args.environments} awake environments)",
         f"{statistics.median(latencies):.3f}" if latencies else "none")
    _row(f"result -> reply p99 s ({args.environments} awake environments)", f"{p99:.3f}",
         f"< {TARGET_P99_S:.0f}  {ok(p99 < TARGET_P99_S)}")
    if latencies:
        _row("  p90 / max s", f"{percentile(latencies, 0.9):.3f} / {max(latencies):.3f}")
    _row("  replies / results sent", f"{len(latencies)} / {at_scale['samples']}")
    _row("  failed SQS polls during the run", f"{at_scale['poll_errors']:.0f}")
    _row("  environments polled (awake + 3 routed; none asleep)", str(at_scale["polling"]))
    _row("  environments created + queues, s", f"{at_scale['populate_s']:.1f}")
    _row(f"SQS calls per sleeping environment per hour ({args.sleeping} asleep)",
         f"{at_scale['sleeping_calls_per_hour']:.2f}", "0 after the grace period")
    _row("  one-time drain at start, calls per sleeping environment",
         f"{at_scale['drain_calls']:.1f}")
    _row("  SQS calls per awake environment per hour (idle)",
         f"{at_scale['awake_calls_per_hour']:.0f}", "~180 long polls + 60 DLQ sweeps")
    _row("  idle window measured, s", f"{at_scale['window_s']:.0f}")
    _row("mail -> command, first (creates environment) s", f"{first:.3f}")
    _row("mail -> command, p50 s", f"{statistics.median(samples):.3f}")
    _row("mail -> command, p95 s", f"{percentile(samples, 0.95):.3f}")
    _row("  samples", str(len(samples)))


if __name__ == "__main__":
    main()
