"""The wake poller's light GetQueueAttributes (aiohttp + SigV4, no boto3 per call) against moto
over HTTP: message counts, in-flight jobs, a vanished queue, and AWS errors as condition
reasons, the same answers the boto3 path gave."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import boto3
import pytest

from tests.integration.operator.sqsproxy import SqsProxy
from webordinary.devkit.aws import MotoServer
from webordinary.operator.adapters.sqs import SqsAdapter, SqsFailure
from webordinary.operator.settings import OperatorSettings


@pytest.fixture
def proxy(moto: MotoServer) -> Iterator[SqsProxy]:
    running = SqsProxy(moto.endpoint_url).start()
    yield running
    running.stop()


def test_probe_reads_message_counts_and_reports_gone_queues(
        moto: MotoServer, proxy: SqsProxy) -> None:
    sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=moto.endpoint_url)
    url = sqs.create_queue(QueueName="wo-probe-input")["QueueUrl"]
    adapter = SqsAdapter(OperatorSettings(sqs_endpoint_url=proxy.url, aws_region="us-east-1"))

    async def scenario() -> list[bool | None]:
        seen = [await adapter.input_busy(url)]
        sqs.send_message(QueueUrl=url, MessageBody="{}")
        seen.append(await adapter.input_busy(url))  # waiting
        sqs.receive_message(QueueUrl=url, VisibilityTimeout=600)
        seen.append(await adapter.input_busy(url))  # in flight: a job runs
        sqs.delete_queue(QueueUrl=url)
        seen.append(await adapter.input_busy(url))  # gone
        proxy.fail("GetQueueAttributes", status=400, code="ThrottlingException", times=1)
        with pytest.raises(SqsFailure) as throttled:
            await adapter.input_busy(url)
        assert throttled.value.reason == "AWSThrottled"
        assert throttled.value.transient
        proxy.fail("GetQueueAttributes", status=403, code="AccessDenied", times=1)
        with pytest.raises(SqsFailure) as denied:
            await adapter.input_busy(url)
        assert denied.value.reason == "AWSError"
        assert not denied.value.transient
        await adapter.probe.close()
        return seen

    try:
        assert asyncio.run(scenario()) == [False, True, True, None]
    finally:
        adapter.close()
    # One call per look, all of them signed requests moto accepted (errors only injected).
    assert proxy.counts["GetQueueAttributes"] == 6
    assert not [e for e in proxy.errors if not e.startswith("GetQueueAttributes 400")]
