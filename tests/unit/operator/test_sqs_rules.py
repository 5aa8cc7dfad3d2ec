"""The SQS adapter's pure rules: attributes, ARNs, ownership, error classes."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from webordinary.contracts.environment import Queues
from webordinary.operator.adapters.sqs import (
    DLQ_RETENTION,
    Owner,
    classify,
    desired_attributes,
    differing,
    ownership_problem,
    probe_failure,
    queue_arn,
)
from webordinary.operator.adapters.sqsprobe import ProbeError

OWNER = Owner("tenants", "ameliastamps-website-john", "uid-1")
ARN = "arn:aws:sqs:us-east-1:123456789012:webordinary-dlq-x"


def client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "CreateQueue")


def test_input_redrives_to_the_dlq() -> None:
    attrs = desired_attributes("input", Queues(max_receive_count=5), ARN)
    assert json.loads(attrs["RedrivePolicy"]) == {"deadLetterTargetArn": ARN,
                                                  "maxReceiveCount": 5}
    assert attrs["VisibilityTimeout"] == "300"
    with pytest.raises(ValueError, match="ARN"):
        desired_attributes("input", Queues(), None)


def test_output_redrives_to_the_dlq_too() -> None:
    """A result Hermes cannot relay ends in the DLQ instead of coming back forever."""
    attrs = desired_attributes("output", Queues(max_receive_count=4), ARN)
    assert json.loads(attrs["RedrivePolicy"]) == {"deadLetterTargetArn": ARN,
                                                  "maxReceiveCount": 4}
    with pytest.raises(ValueError, match="ARN"):
        desired_attributes("output", Queues(), None)


def test_dlq_keeps_messages_longest() -> None:
    assert desired_attributes("dlq", Queues(), None)["MessageRetentionPeriod"] == str(
        DLQ_RETENTION)
    assert "RedrivePolicy" not in desired_attributes("dlq", Queues(), None)


def test_differing_compares_redrive_as_json() -> None:
    desired = desired_attributes("input", Queues(), ARN)
    observed = dict(desired)
    observed["RedrivePolicy"] = json.dumps({"maxReceiveCount": "3", "deadLetterTargetArn": ARN})
    assert differing(desired, observed) == {}
    observed["VisibilityTimeout"] = "30"
    assert differing(desired, observed) == {"VisibilityTimeout": "300"}
    observed["RedrivePolicy"] = json.dumps({"maxReceiveCount": 9, "deadLetterTargetArn": ARN})
    assert "RedrivePolicy" in differing(desired, observed)


@pytest.mark.parametrize(
    ("url", "region", "arn"),
    [
        ("https://sqs.us-east-1.amazonaws.com/123456789012/q", "us-east-1",
         "arn:aws:sqs:us-east-1:123456789012:q"),
        ("http://127.0.0.1:5000/123456789012/q", "eu-west-1",
         "arn:aws:sqs:eu-west-1:123456789012:q"),
        ("https://sqs.cn-north-1.amazonaws.com.cn/1/q", "cn-north-1",
         "arn:aws-cn:sqs:cn-north-1:1:q"),
    ],
)
def test_queue_arn(url: str, region: str, arn: str) -> None:
    assert queue_arn(url, region) == arn


def test_queue_arn_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="queue URL"):
        queue_arn("http://x/", "us-east-1")


def test_ownership() -> None:
    assert ownership_problem(OWNER.tags(), OWNER) is None
    older = {**OWNER.tags(), "webordinary.dev/uid": "old"}
    assert ownership_problem(older, OWNER) is None, "a retained queue of the same env is adopted"
    assert "without webordinary ownership tags" in (ownership_problem({}, OWNER) or "")
    other = {**OWNER.tags(), "webordinary.dev/name": "someone-else"}
    assert "belongs to tenants/someone-else" in (ownership_problem(other, OWNER) or "")


@pytest.mark.parametrize(
    ("error", "reason", "transient"),
    [
        (client_error("RequestThrottled", 400), "AWSThrottled", True),
        (client_error("ThrottlingException", 400), "AWSThrottled", True),
        (client_error("InternalFailure", 500), "AWSUnavailable", True),
        (client_error("ServiceUnavailable", 503), "AWSUnavailable", True),
        (client_error("QueueDeletedRecently", 400), "QueueDeletedRecently", True),
        (client_error("AccessDenied", 403), "AWSError", False),
        (EndpointConnectionError(endpoint_url="http://x"), "AWSUnreachable", True),
    ],
)
def test_classify(error: Exception, reason: str, transient: bool) -> None:
    failure = classify(error, "CreateQueue")
    assert (failure.reason, failure.transient) == (reason, transient)
    assert str(failure).startswith("CreateQueue")


def test_deleted_recently_waits_a_minute() -> None:
    assert (classify(client_error("QueueDeletedRecently", 400), "x").delay or 0) >= 60


@pytest.mark.parametrize(("status", "code", "action", "reason", "transient"), [
    (400, "RequestThrottled", "CreateQueue", "AWSThrottled", True),
    (0, "Unreachable", "CreateQueue", "AWSUnreachable", True),
    (503, "ServiceUnavailable", "CreateQueue", "AWSUnavailable", True),
    (400, "QueueAlreadyExists", "CreateQueue", "QueueRace", True),
    (400, "QueueDeletedRecently", "CreateQueue", "QueueDeletedRecently", True),
    (400, "InvalidAttributeValue", "CreateQueue", "AWSError", False),
    (403, "AccessDenied", "GetQueueAttributes", "AWSError", False),
])
def test_light_client_answers_map_like_boto3_errors(
        status: int, code: str, action: str, reason: str, transient: bool) -> None:
    failure = probe_failure(ProbeError(status, code, "m", action), action)
    assert (failure.reason, failure.transient) == (reason, transient)
    assert action in str(failure)
