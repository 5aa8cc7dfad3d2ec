"""The devkit's EKS Pod Identity stand-in, through boto3 over HTTP: the model's shapes, AWS's
error answers, filters and pagination."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, ParamValidationError

from webordinary.devkit.eks import PodIdentityApi

ROLE = "arn:aws:iam::123456789012:role/editor"


@pytest.fixture(scope="module")
def api() -> Iterator[PodIdentityApi]:
    with PodIdentityApi(clusters=["prod"], roles=[ROLE]) as server:
        yield server


@pytest.fixture
def eks(api: PodIdentityApi) -> Any:
    return boto3.client("eks", endpoint_url=api.endpoint_url, region_name="us-east-1",
                        aws_access_key_id="x", aws_secret_access_key="x")


def error(call: Any, **kwargs: Any) -> tuple[str, int, str]:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    response = caught.value.response
    return (response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"],
            response["Error"]["Message"])


def test_create_describe_update_delete(eks: Any) -> None:
    made = eks.create_pod_identity_association(
        clusterName="prod", namespace="crud", serviceAccount="sa", roleArn=ROLE,
        tags={"webordinary.dev/name": "x"})["association"]
    assert made["associationId"].startswith("a-")
    assert made["associationArn"].endswith(f"podidentityassociation/prod/{made['associationId']}")
    got = eks.describe_pod_identity_association(
        clusterName="prod", associationId=made["associationId"])["association"]
    assert (got["roleArn"], got["tags"], got["disableSessionTags"]) == (
        ROLE, {"webordinary.dev/name": "x"}, False)
    eks.update_pod_identity_association(clusterName="prod", associationId=made["associationId"],
                                        disableSessionTags=True)
    assert eks.describe_pod_identity_association(
        clusterName="prod", associationId=made["associationId"],
    )["association"]["disableSessionTags"] is True
    eks.delete_pod_identity_association(clusterName="prod", associationId=made["associationId"])
    assert error(eks.describe_pod_identity_association, clusterName="prod",
                 associationId=made["associationId"])[:2] == ("ResourceNotFoundException", 404)


def test_aws_errors(eks: Any) -> None:
    eks.create_pod_identity_association(clusterName="prod", namespace="dup",
                                        serviceAccount="sa", roleArn=ROLE)
    code, status, message = error(eks.create_pod_identity_association, clusterName="prod",
                                  namespace="dup", serviceAccount="sa", roleArn=ROLE)
    assert (code, status) == ("ResourceInUseException", 409)
    assert message.startswith("Association already exists: a-")
    assert error(eks.list_pod_identity_associations, clusterName="staging") == (
        "ResourceNotFoundException", 404, "No cluster found for name: staging.")
    assert error(eks.create_pod_identity_association, clusterName="prod", namespace="n",
                 serviceAccount="s", roleArn=ROLE + "-typo") == (
        "InvalidParameterException", 400, "Role provided in the request does not exist")
    assert error(eks.create_pod_identity_association, clusterName="prod", namespace="n",
                 serviceAccount="s", roleArn="not-an-arn")[:2] == (
        "InvalidParameterException", 400)
    assert error(eks.create_pod_identity_association, clusterName="prod", namespace="n",
                 serviceAccount="s", roleArn=ROLE, tags={"k" * 129: "v"})[:2] == (
        "InvalidParameterException", 400)


def test_idempotency_token_returns_the_same_association(eks: Any) -> None:
    first = eks.create_pod_identity_association(
        clusterName="prod", namespace="token", serviceAccount="sa", roleArn=ROLE,
        clientRequestToken="t-1")["association"]
    again = eks.create_pod_identity_association(
        clusterName="prod", namespace="token", serviceAccount="sa", roleArn=ROLE,
        clientRequestToken="t-1")["association"]
    assert again["associationId"] == first["associationId"]


def test_list_filters_and_pages(eks: Any) -> None:
    for n in range(5):
        eks.create_pod_identity_association(clusterName="prod", namespace="paged",
                                            serviceAccount=f"sa-{n}", roleArn=ROLE)
    one = eks.list_pod_identity_associations(clusterName="prod", namespace="paged",
                                             serviceAccount="sa-3")["associations"]
    assert [a["serviceAccount"] for a in one] == ["sa-3"]
    assert set(one[0]) == {"clusterName", "namespace", "serviceAccount", "associationArn",
                           "associationId"}
    pages = eks.get_paginator("list_pod_identity_associations").paginate(
        clusterName="prod", namespace="paged", PaginationConfig={"PageSize": 2})
    sizes = [len(page["associations"]) for page in pages]
    assert sizes == [2, 2, 1]


def test_requests_are_checked_against_the_model(api: PodIdentityApi) -> None:
    """What botocore would never send is refused the way EKS refuses it (raw HTTP)."""
    status, body, kind = api.handle("POST", "/clusters/prod/pod-identity-associations",
                                    b'{"namespace": "n", "serviceAccount": "s"}')
    assert (status, kind, body["message"]) == (400, "InvalidParameterException",
                                               "roleArn is required")
    status, _, kind = api.handle("POST", "/clusters/prod/pod-identity-associations",
                                 b'{"namespace": "n", "serviceAccount": "s", "roleArn": "'
                                 + ROLE.encode() + b'", "colour": "blue"}')
    assert (status, kind) == (400, "InvalidParameterException")
    status, _, kind = api.handle("GET", "/clusters/prod/pod-identity-associations?maxResults=0",
                                 b"")
    assert (status, kind) == (400, "InvalidParameterException")
    status, _, kind = api.handle("POST", "/clusters/prod/pod-identity-associations",
                                 b'{"namespace": 3, "serviceAccount": "s", "roleArn": "r"}')
    assert (status, kind) == (400, "InvalidParameterException")


def test_denied_actions_answer_access_denied(api: PodIdentityApi, eks: Any) -> None:
    api.denied = {"ListPodIdentityAssociations"}
    try:
        assert error(eks.list_pod_identity_associations, clusterName="prod")[:2] == (
            "AccessDeniedException", 403)
    finally:
        api.denied = set()


def test_botocore_refuses_what_the_model_forbids_before_sending(eks: Any) -> None:
    with pytest.raises(ParamValidationError):
        eks.create_pod_identity_association(clusterName="prod", namespace="n")
