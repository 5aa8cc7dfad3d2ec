"""The devkit's moto behaves like SQS where moto's own server does not: concurrent requests,
redriven creates against many queues, and HTTP/1.1 connections kept open."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlparse

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from webordinary.devkit.aws import MotoServer, start_moto


@pytest.fixture
def moto() -> Iterator[MotoServer]:
    server = start_moto()
    yield server
    server.stop()


def sqs(moto: MotoServer) -> Any:
    # No retries: a 500 from the stand-in must show, not be hidden by botocore's retry.
    return boto3.client("sqs", endpoint_url=moto.endpoint_url, region_name="us-east-1",
                        config=Config(retries={"mode": "standard", "max_attempts": 1},
                                      max_pool_connections=16))


def test_concurrent_redriven_creates_keep_their_own_dead_letter_queues(moto: MotoServer) -> None:
    client = sqs(moto)
    dlq = client.create_queue(QueueName="wo-dlq")["QueueUrl"]
    arn = client.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    policy = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 2})

    def create(i: int) -> None:  # like the operator: each queue's own DLQ just before it
        client.create_queue(QueueName=f"wo-d{i}")
        own = json.dumps({"deadLetterTargetArn": f"{arn.rsplit(':', 1)[0]}:wo-d{i}",
                          "maxReceiveCount": 2})
        client.create_queue(QueueName=f"wo-q{i}", Attributes={"RedrivePolicy": own})

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(create, range(300)))  # raises on any error answer
    for i in (0, 150, 299):  # the DLQ is found by its ARN (one lookup, not a walk)
        url = client.get_queue_url(QueueName=f"wo-q{i}")["QueueUrl"]
        stored = client.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])
        assert json.loads(stored["Attributes"]["RedrivePolicy"])["deadLetterTargetArn"] == (
            f"{arn.rsplit(':', 1)[0]}:wo-d{i}")
    url = client.get_queue_url(QueueName="wo-q7")["QueueUrl"]
    client.set_queue_attributes(QueueUrl=url, Attributes={"RedrivePolicy": policy})
    stored = client.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])
    assert json.loads(stored["Attributes"]["RedrivePolicy"]) == {
        "deadLetterTargetArn": arn, "maxReceiveCount": 2}
    # the redrive works: a message received twice moves to the DLQ
    client.send_message(QueueUrl=url, MessageBody="m")
    for _ in range(2):
        assert len(client.receive_message(QueueUrl=url, VisibilityTimeout=0)["Messages"]) == 1
    assert client.receive_message(QueueUrl=url).get("Messages") is None
    assert client.receive_message(QueueUrl=dlq)["Messages"][0]["Body"] == "m"


def test_a_redrive_to_a_missing_queue_is_still_refused(moto: MotoServer) -> None:
    client = sqs(moto)
    policy = json.dumps({"deadLetterTargetArn": "arn:aws:sqs:us-east-1:123456789012:wo-none",
                         "maxReceiveCount": 2})
    with pytest.raises(ClientError, match="Could not find DLQ"):
        client.create_queue(QueueName="wo-orphan", Attributes={"RedrivePolicy": policy})


def test_connections_are_kept_open_between_answers(moto: MotoServer) -> None:
    target = urlparse(moto.endpoint_url)
    connection = http.client.HTTPConnection(target.hostname or "", target.port, timeout=10)
    sockets = []
    for name in ("wo-a", "wo-b"):
        body = json.dumps({"QueueName": name}).encode()
        connection.request("POST", "/", body=body, headers={
            "X-Amz-Target": "AmazonSQS.CreateQueue",
            "Content-Type": "application/x-amz-json-1.0",
            "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/sqs/"
                             "aws4_request, SignedHeaders=host, Signature=x"})
        response = connection.getresponse()
        assert response.status == 200, response.read()
        assert response.getheader("Connection") != "close"
        assert json.loads(response.read())["QueueUrl"].endswith(f"/{name}")
        sockets.append(connection.sock)
    assert sockets[0] is not None
    assert sockets[0] is sockets[1]  # one TCP connection for both
    connection.close()
