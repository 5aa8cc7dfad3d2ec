"""The shared queue listing that lets drift ticks skip SQS stays fresh on its own: after a
creation burst every environment's first drift tick comes ~one drift interval after the
burst's last listing, when it had turned stale, and thousands of ticks each checked SQS."""

from __future__ import annotations

import asyncio

import boto3

from tests.integration.operator.sqsproxy import SqsProxy
from webordinary.contracts import naming
from webordinary.contracts.environment import Queues, QueueUrls
from webordinary.contracts.naming import QUEUE_PREFIX
from webordinary.devkit.aws import MotoServer
from webordinary.operator.adapters.sqs import Owner, SqsAdapter
from webordinary.operator.settings import OperatorSettings

MAX_AGE = 1.0  # seconds (production: half the 300 s drift interval); the clock is compressed


def test_the_listing_keeper_keeps_ticks_off_sqs(moto: MotoServer) -> None:
    sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=moto.endpoint_url)
    first, later = f"{QUEUE_PREFIX}-input-listing-a", f"{QUEUE_PREFIX}-input-listing-b"
    sqs.create_queue(QueueName=first)
    adapter = SqsAdapter(OperatorSettings(sqs_endpoint_url=moto.endpoint_url,
                                          aws_region="us-east-1"))
    adapter.listing_max_age = MAX_AGE

    async def scenario() -> list[bool | None]:
        adapter.existing([first])
        await asyncio.sleep(2.2 * MAX_AGE)
        seen = [adapter.listed([first])]  # stale, nobody refreshed it: the tick checks itself
        keeper = asyncio.get_running_loop().create_task(adapter.keep_listing_fresh())
        try:
            await asyncio.sleep(0.3)
            sqs.create_queue(QueueName=later)  # by someone else: only a listing shows it
            for _ in range(4):
                await asyncio.sleep(MAX_AGE)
                seen.append(adapter.listed([first, later]))
        finally:
            keeper.cancel()
        return seen

    try:
        assert asyncio.run(scenario()) == [None, True, True, True, True]
    finally:
        adapter.close()


def test_creations_one_after_another_are_a_burst_too(moto: MotoServer) -> None:
    """Environments created many at once take the burst path (the shared listing instead of a
    GetQueueUrl per queue) even when the operator creates them one after another: with each
    environment's three CreateQueue calls taking milliseconds, a busy operator rarely had eight
    in flight (836 of a 5,000 burst took the checked path). A lone creation still looks first."""
    proxy = SqsProxy(moto.endpoint_url).start()
    threshold = 4
    adapter = SqsAdapter(OperatorSettings(sqs_endpoint_url=proxy.url, aws_region="us-east-1",
                                          sqs_burst_threshold=threshold))

    async def create(users: list[str]) -> None:
        for user in users:  # each awaited: never two in flight
            owner = Owner("tenants", f"acme-site-{user}", f"uid-{user}")
            report = await adapter.ensure_queues(naming.queue_names("acme", "site", user),
                                                 QueueUrls(), Queues(), owner)
            assert len(report.created) == 3

    try:
        asyncio.run(create(["lone"]))
        assert proxy.counts["GetQueueUrl"] == 3, "a lone creation checks each queue first"
        asyncio.run(create([f"u{i}" for i in range(10)]))
    finally:
        proxy.stop()
        adapter.close()
    # The lone one and the next two are still below the threshold; from the fourth on, a burst.
    assert proxy.counts["GetQueueUrl"] == 3 * (threshold - 1), dict(proxy.counts)
    assert proxy.counts["CreateQueue"] == 3 * 11
