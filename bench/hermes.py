"""Hermes benchmark: mails parsed and routed per second, and mail-in -> command latency.

Run: `./dev bench hermes [--seconds S] [--mails N]`.
1. Throughput of the pure path (parse, thread, strip quotes, authenticate, route, plan) over the
   email corpus on one core; AWS and Kubernetes calls excluded. Target >= 200 mails/s.
2. Latency from an SES notification sent to the inbound SQS queue (moto) to the command being
   receivable on the environment's input queue, with Hermes, the strict Kubernetes API emulator
   and an operator stand-in: the first mail (environment created) and steady state.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import boto3

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.plugins.hermes import (
    EMAILS,
    FROM_ADDRESS,
    ROUTING_YAML,
    OperatorStandIn,
    ses_notification,
)
from webordinary.devkit.aws import start_moto
from webordinary.devkit.kubeapi import start_kube_api
from webordinary.hermes.app import start
from webordinary.hermes.auth import Verdict, Verdicts
from webordinary.hermes.decisions import Inbound, Limits, decide
from webordinary.hermes.routing import load_routing
from webordinary.hermes.settings import HermesSettings

TARGET_RATE = 200.0
REPO = Path(__file__).resolve().parents[1]


def throughput(seconds: float) -> tuple[float, int, dict[str, float]]:
    """Mails per second through decide() (parse + route + plan), overall and per mail."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    routing = load_routing(ROUTING_YAML)
    limits = Limits(own_addresses=frozenset({FROM_ADDRESS}))
    passing = Verdicts(spf=Verdict.PASS, dkim=Verdict.PASS, dmarc=Verdict.PASS)
    mails = {p.name: p.read_bytes() for p in sorted(EMAILS.glob("*.eml"))}
    inbound = {n: Inbound(raw=r, verdicts=passing, source="ses", delivery_id=n)
               for n, r in mails.items()}
    per_mail: dict[str, float] = {}
    for name, item in inbound.items():
        began = time.perf_counter()
        for _ in range(50):
            decide(item, routing, limits, {})
        per_mail[name] = 50 / (time.perf_counter() - began)
    count = 0
    began = time.perf_counter()
    items = list(inbound.values())
    while time.perf_counter() - began < seconds:
        for item in items:
            decide(item, routing, limits, {})
        count += len(items)
    return count / (time.perf_counter() - began), count, per_mail


async def provisioned(operator: OperatorStandIn, name: str) -> dict[str, str]:
    """The environment's queue URLs once the operator stand-in has published them."""
    for _ in range(6000):
        if name in operator.provisioned:
            return operator.provisioned[name]
        await asyncio.sleep(0.005)
    raise TimeoutError(f"{name} was not provisioned within 30 s")


async def latency(mails: int) -> tuple[float, list[float]]:
    """(first mail incl. environment creation, steady-state latencies) in seconds."""
    moto = start_moto()
    kube = start_kube_api([REPO / "crds"])
    kube.create_namespaces("webordinary")
    tmp = Path(tempfile.mkdtemp(prefix="hermes-bench-"))
    try:
        sqs = boto3.client("sqs", endpoint_url=moto.endpoint_url, region_name="us-east-1")
        boto3.client("ses", endpoint_url=moto.endpoint_url, region_name="us-east-1") \
            .verify_email_identity(EmailAddress=FROM_ADDRESS)
        inbound = sqs.create_queue(QueueName="bench-inbound")["QueueUrl"]
        (tmp / "routing.yaml").write_text(ROUTING_YAML)
        settings = HermesSettings(
            namespace="webordinary", kube_api_url=kube.url, aws_endpoint_url=moto.endpoint_url,
            inbound_queue_url=inbound, inbound_wait_seconds=20, from_address=FROM_ADDRESS,
            routing_file=tmp / "routing.yaml", metrics_host="127.0.0.1", metrics_port=0,
            ack_enabled=False, results_wait_seconds=20,
        )
        running = await start(settings)
        operator = OperatorStandIn(kube.url, moto.endpoint_url, "webordinary")
        op_task = asyncio.create_task(operator.run())
        template = (EMAILS / "gmail_new.eml").read_bytes()
        samples: list[float] = []
        first = 0.0
        for index in range(mails + 1):
            raw = template.replace(b"<CAJx8mK3p2Lr9vQ=", f"<bench{index}-".encode())
            body = ses_notification(raw, message_id=f"bench-{index}")
            began = time.perf_counter()
            await asyncio.to_thread(sqs.send_message, QueueUrl=inbound, MessageBody=body)
            url = (await provisioned(operator, "ameliastamps-website-john"))["input"]
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


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--mails", type=int, default=30)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    first, samples = asyncio.run(latency(args.mails))
    rate, count, per_mail = throughput(args.seconds)
    print("Hermes benchmark")
    print(f"{'metric':<46}{'value':>14}  target")
    print(f"{'parse+route, mails/s (one core, corpus mix)':<46}{rate:>14.0f}  >= {TARGET_RATE:.0f}"
          f"  {'OK' if rate >= TARGET_RATE else 'MISSED'}")
    print(f"{'  mails processed':<46}{count:>14}")
    for name, value in sorted(per_mail.items(), key=lambda kv: kv[1]):
        print(f"{'  ' + name:<46}{value:>14.0f}")
    print(f"{'mail -> command, first (creates environment) s':<46}{first:>14.3f}")
    print(f"{'mail -> command, p50 s':<46}{statistics.median(samples):>14.3f}")
    print(f"{'mail -> command, p95 s':<46}{percentile(samples, 0.95):>14.3f}")
    print(f"{'mail -> command, max s':<46}{max(samples):>14.3f}")
    print(f"{'  samples':<46}{len(samples):>14}")


if __name__ == "__main__":
    main()
