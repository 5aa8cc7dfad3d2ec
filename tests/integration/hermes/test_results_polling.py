"""Hermes' async SQS client against moto over HTTP, and what result polling costs: an awake
environment's result is answered as soon as it lands; a sleeping one's queues are drained once
and then never called again."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import boto3
import pytest

from tests.integration.hermes.test_pipeline import NS, settings_for, wait_for
from tests.plugins.hermes import FROM_ADDRESS, OperatorStandIn
from webordinary.contracts.messages import Result, ResultStatus
from webordinary.devkit.aws import MotoServer
from webordinary.devkit.kubeapi import KubeAPI
from webordinary.hermes.adapters.sqs import AsyncSqs, SqsError
from webordinary.hermes.app import start
from webordinary.hermes.decisions import ReplyContext
from webordinary.hermes.journal import CommandRecord


async def test_async_sqs_speaks_moto(moto: MotoServer) -> None:
    sqs = AsyncSqs("us-east-1", moto.endpoint_url)
    url = boto3.client("sqs", endpoint_url=moto.endpoint_url, region_name="us-east-1") \
        .create_queue(QueueName="async-q")["QueueUrl"]
    try:
        assert await sqs.receive(url, 10, 0) == []
        began = time.monotonic()
        waiting = asyncio.create_task(sqs.receive(url, 10, 20))
        await asyncio.sleep(0.3)
        await sqs.send(url, "hello", attributes={"cause": "timeout"})
        [message] = await waiting
        assert time.monotonic() - began < 5  # the long poll returned when the message came
        assert message.body == "hello"
        assert message.receive_count == 1
        await sqs.delete(url, message.receipt_handle)
        assert await sqs.receive(url, 10, 0) == []
        with pytest.raises(SqsError) as missing:
            await sqs.receive(url + "-gone", 10, 0)
        assert not missing.value.transient
        assert sqs.calls[url] == 5
    finally:
        await sqs.close()


async def _put_status(kube_url: str, name: str, patch: dict[str, Any]) -> None:
    collection = (f"{kube_url}/apis/webordinary.dev/v1alpha1/namespaces/{NS}"
                  "/editenvironments")
    async with aiohttp.ClientSession() as session, session.patch(
        f"{collection}/{name}/status", data=json.dumps(patch),
        headers={"Content-Type": "application/merge-patch+json"},
    ) as response:
        assert response.status == 200, await response.text()


async def _create(kube_url: str, name: str, user: str) -> None:
    collection = (f"{kube_url}/apis/webordinary.dev/v1alpha1/namespaces/{NS}"
                  "/editenvironments")
    body = {"apiVersion": "webordinary.dev/v1alpha1", "kind": "EditEnvironment",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"clientId": "ameliastamps", "projectId": "website", "userId": user,
                     "repository": {"url": "https://example.com/r.git"}}}
    async with aiohttp.ClientSession() as session, session.post(
        collection, data=json.dumps(body), headers={"Content-Type": "application/json"},
    ) as response:
        assert response.status == 201, await response.text()


async def test_sleeping_environments_cost_no_calls_awake_ones_answer_at_once(
    moto: MotoServer, kube_api: KubeAPI, tmp_path: Path,
) -> None:
    ses = boto3.client("ses", endpoint_url=moto.endpoint_url, region_name="us-east-1")
    ses.verify_email_identity(EmailAddress=FROM_ADDRESS)
    operator = OperatorStandIn(kube_api.url, moto.endpoint_url, NS)
    await _create(kube_api.url, "ameliastamps-website-awake", "awake")
    await _create(kube_api.url, "ameliastamps-website-asleep", "asleep")
    async with aiohttp.ClientSession() as session:
        await operator.step(session)
    urls = operator.provisioned
    await _put_status(kube_api.url, "ameliastamps-website-asleep", {"status": {
        "phase": "Sleeping"}})
    running = await start(settings_for(moto, kube_api, tmp_path))
    hermes = running.hermes
    try:
        await wait_for(lambda: hermes.ready)
        sqs = hermes.queues
        assert isinstance(sqs, AsyncSqs)
        asleep = urls["ameliastamps-website-asleep"]
        await wait_for(lambda: sqs.calls[asleep["output"]] >= 1 and sqs.calls[asleep["dlq"]] >= 1)
        drained = sqs.calls[asleep["output"]] + sqs.calls[asleep["dlq"]]
        for _ in range(5):  # listings come and go; the sleeping queues are not called again
            await hermes.refresh_watches()
            await asyncio.sleep(0.2)
        assert sqs.calls[asleep["output"]] + sqs.calls[asleep["dlq"]] == drained
        assert hermes.results.polling() == ["ameliastamps-website-awake"]

        record = CommandRecord(command_id="cmd-awake-1", thread_id="0123456789abcdef",
                               environment="ameliastamps-website-awake",
                               reply=ReplyContext(to="john@ameliastamps.com", subject="Re: x",
                                                  message_id="m1@ameliastamps.com"),
                               queued_at=hermes.clock())
        hermes.journal.record_command(record)
        result = Result(command_id="cmd-awake-1", session_id="0123456789abcdef",
                        status=ResultStatus.COMPLETED, summary="Done.")
        began = time.monotonic()
        await asyncio.to_thread(
            boto3.client("sqs", endpoint_url=moto.endpoint_url, region_name="us-east-1")
            .send_message, QueueUrl=urls["ameliastamps-website-awake"]["output"],
            MessageBody=result.model_dump_json(by_alias=True))
        await wait_for(lambda: hermes.journal.replied("result:cmd-awake-1"))
        assert time.monotonic() - began < 3
    finally:
        await running.close()
