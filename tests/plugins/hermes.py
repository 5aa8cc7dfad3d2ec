"""Hermes test helpers: the email corpus, a routing config for it, SES-shaped notifications."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import aiohttp
import boto3
import pytest

from webordinary.contracts.naming import queue_names
from webordinary.hermes.routing import RoutingConfig, load_routing

EMAILS = Path(__file__).resolve().parent.parent / "fixtures" / "emails"
PROJECT_ADDRESS = "website@edit.webordinary.dev"
FROM_ADDRESS = "edit@webordinary.dev"

ROUTING_YAML = f"""
senders:
  - address: john@ameliastamps.com
    clientId: ameliastamps
    userId: john
  - address: sarah@ameliastamps.com
    clientId: ameliastamps
    userId: sarah
  - address: "*@ameliastamps.com"
    clientId: ameliastamps
    userId: team
  - address: mallory@otherclient.com
    clientId: otherclient
    userId: mallory
projects:
  - address: {PROJECT_ADDRESS}
    clientId: ameliastamps
    projectId: website
    repository: {{url: "https://github.com/ameliastamps/website.git", branch: main}}
"""

PASS = {"status": "PASS"}


def corpus(name: str) -> bytes:
    """Raw bytes of one corpus mail."""
    return (EMAILS / name).read_bytes()


def ses_notification(
    raw: bytes | None,
    *,
    message_id: str = "ses-0001",
    recipients: tuple[str, ...] = (PROJECT_ADDRESS,),
    verdicts: dict[str, str] | None = None,
    s3: tuple[str, str] | None = None,
    encoding: str = "BASE64",
    sns: bool = True,
) -> str:
    """An SQS body as SES delivers it: SNS-wrapped or raw, mail inline or in S3."""
    v = {"spf": "PASS", "dkim": "PASS", "dmarc": "PASS", "spam": "PASS", "virus": "PASS"}
    v.update(verdicts or {})
    action: dict[str, Any]
    if s3:
        action = {"type": "S3", "topicArn": "arn:aws:sns:us-east-1:123456789012:inbound",
                  "bucketName": s3[0], "objectKeyPrefix": "", "objectKey": s3[1]}
    else:
        action = {"type": "SNS", "topicArn": "arn:aws:sns:us-east-1:123456789012:inbound",
                  "encoding": encoding}
    note: dict[str, Any] = {
        "notificationType": "Received",
        "mail": {
            "timestamp": "2026-11-28T15:02:12.000Z",
            "source": "john@ameliastamps.com",
            "messageId": message_id,
            "destination": list(recipients),
            "headersTruncated": False,
            "headers": [],
            "commonHeaders": {"returnPath": "john@ameliastamps.com"},
        },
        "receipt": {
            "timestamp": "2026-11-28T15:02:12.500Z",
            "processingTimeMillis": 420,
            "recipients": list(recipients),
            "spamVerdict": {"status": v["spam"]},
            "virusVerdict": {"status": v["virus"]},
            "spfVerdict": {"status": v["spf"]},
            "dkimVerdict": {"status": v["dkim"]},
            "dmarcVerdict": {"status": v["dmarc"]},
            "action": action,
        },
    }
    if raw is not None and not s3:
        note["content"] = (
            base64.b64encode(raw).decode() if encoding == "BASE64" else raw.decode("utf-8")
        )
    if not sns:
        return json.dumps(note)
    return json.dumps({
        "Type": "Notification",
        "MessageId": f"sns-{message_id}",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:inbound",
        "Subject": "Amazon SES Email Receipt Notification",
        "Message": json.dumps(note),
        "Timestamp": "2026-11-28T15:02:12.600Z",
        "SignatureVersion": "1",
        "Signature": "c2lnbmF0dXJl",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/cert.pem",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
    })


@pytest.fixture
def hermes_routing() -> RoutingConfig:
    """The routing config the corpus is written for."""
    return load_routing(ROUTING_YAML)


class OperatorStandIn:
    """Plays the operator's part for Hermes tests: for each EditEnvironment, create its three
    queues in moto and publish them (and a phase) on the status subresource."""

    def __init__(self, kube_url: str, endpoint_url: str, namespace: str, phase: str = "Ready"):
        self.kube_url = kube_url.rstrip("/")
        self.namespace = namespace
        self.phase = phase
        self.sqs = boto3.client("sqs", endpoint_url=endpoint_url, region_name="us-east-1")
        self.provisioned: dict[str, dict[str, str]] = {}
        self.delay = 0.0

    def _collection(self) -> str:
        return (f"{self.kube_url}/apis/webordinary.dev/v1alpha1/namespaces/{self.namespace}"
                "/editenvironments")

    def _queues(self, spec: dict[str, Any]) -> dict[str, str]:
        names = queue_names(spec["clientId"], spec["projectId"], spec["userId"])
        dlq = self.sqs.create_queue(QueueName=names["dlq"])["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        policy = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": "3"})
        urls = {role: self.sqs.create_queue(QueueName=names[role],
                                            Attributes={"RedrivePolicy": policy})["QueueUrl"]
                for role in ("input", "output")}
        return {**urls, "dlq": dlq}

    async def step(self, session: aiohttp.ClientSession) -> None:
        async with session.get(self._collection()) as response:
            items = (await response.json())["items"]
        for obj in items:
            name = obj["metadata"]["name"]
            if (obj.get("status") or {}).get("queues", {}).get("input"):
                continue
            if self.delay:
                await asyncio.sleep(self.delay)
            urls = await asyncio.to_thread(self._queues, obj["spec"])
            patch = {"status": {"phase": self.phase, "queues": urls}}
            async with session.patch(
                f"{self._collection()}/{name}/status", data=json.dumps(patch),
                headers={"Content-Type": "application/merge-patch+json"},
            ) as response:
                assert response.status == 200, await response.text()
            self.provisioned[name] = urls

    async def run(self) -> None:
        async with aiohttp.ClientSession() as session:
            while True:
                await self.step(session)
                await asyncio.sleep(0.05)
