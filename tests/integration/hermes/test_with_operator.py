"""Hermes with the real operator (kopf, in-process) on the emulator and moto: the contract
between them (object Hermes creates, queue URLs the operator publishes) holds for real."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path

import boto3
import kopf
from kopf.testing import KopfRunner

from tests.plugins.hermes import FROM_ADDRESS, ROUTING_YAML, corpus, ses_notification
from webordinary.contracts.messages import Command
from webordinary.contracts.naming import queue_name
from webordinary.devkit.aws import MotoServer
from webordinary.devkit.kubeapi import KubeAPI
from webordinary.hermes.app import start
from webordinary.hermes.mail import parse_mail
from webordinary.hermes.settings import HermesSettings
from webordinary.hermes.threads import thread_id
from webordinary.operator.handlers import register
from webordinary.operator.settings import OperatorSettings

NS = "tenants"


def _ensure_namespace(url: str) -> None:
    body = json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    request = urllib.request.Request(f"{url}/api/v1/namespaces", data=body.encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10):
        pass


async def test_mail_to_command_through_the_real_operator(
    kube_api: KubeAPI, moto: MotoServer, tmp_path: Path
) -> None:
    _ensure_namespace(kube_api.url)
    sqs = boto3.client("sqs", endpoint_url=moto.endpoint_url, region_name="us-east-1")
    boto3.client("ses", endpoint_url=moto.endpoint_url, region_name="us-east-1") \
        .verify_email_identity(EmailAddress=FROM_ADDRESS)
    inbound = sqs.create_queue(QueueName="hermes-inbound")["QueueUrl"]
    (tmp_path / "routing.yaml").write_text(ROUTING_YAML)
    operator_settings = OperatorSettings(
        kube_api_url=kube_api.url, sqs_endpoint_url=moto.endpoint_url, metrics_port=None,
        liveness_port=None,
    )
    registry = kopf.OperatorRegistry()
    register(registry, operator_settings)
    with KopfRunner(["run", "--standalone", "-A"], registry=registry):
        running = await start(HermesSettings(
            namespace=NS, kube_api_url=kube_api.url, aws_endpoint_url=moto.endpoint_url,
            inbound_queue_url=inbound, inbound_wait_seconds=1, from_address=FROM_ADDRESS,
            routing_file=tmp_path / "routing.yaml", metrics_host="127.0.0.1", metrics_port=0,
            results_wait_seconds=1, queue_wait_seconds=30,
        ))
        try:
            raw = corpus("gmail_new.eml")
            await asyncio.to_thread(sqs.send_message, QueueUrl=inbound,
                                    MessageBody=ses_notification(raw))
            name = queue_name("input", "ameliastamps", "website", "john")
            answer: dict[str, object] = {}
            for _ in range(60):
                urls = (await asyncio.to_thread(sqs.list_queues, QueueNamePrefix=name)).get(
                    "QueueUrls", [])
                if urls:
                    answer = await asyncio.to_thread(
                        sqs.receive_message, QueueUrl=urls[0], WaitTimeSeconds=1)
                    if answer.get("Messages"):
                        break
                await asyncio.sleep(0.25)
            messages = answer.get("Messages")
            assert isinstance(messages, list)
            assert messages, "no command on the operator-made input queue"
            command = Command.model_validate_json(messages[0]["Body"])
            scope = "ameliastamps-website-john"
            assert command.session_id == thread_id(parse_mail(raw), scope=scope)
            env = await running.hermes.kube.get(NS, "ameliastamps-website-john")
            assert env is not None
            assert env["status"]["queues"]["input"].endswith(name)
            assert env["spec"]["sessions"] == [command.session_id]
        finally:
            await running.close()
