"""The wake poller's SigV4 signature is botocore's, byte for byte (AWS rejects anything else;
moto does not check signatures, so the integration test cannot tell)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials

from webordinary.operator.adapters.sqsprobe import CONTENT_TYPE, TARGET, Signer


def botocore_signature(url: str, payload: bytes, credentials: ReadOnlyCredentials,
                       region: str, headers: dict[str, str]) -> str:
    """botocore's SigV4 over the same request (its own steps, at our timestamp)."""
    request = AWSRequest(method="POST", url=url, data=payload, headers={
        "Content-Type": CONTENT_TYPE, "X-Amz-Target": TARGET,
        "X-Amz-Date": headers["x-amz-date"],
        **({"X-Amz-Security-Token": credentials.token} if credentials.token else {})})
    auth = SigV4Auth(credentials, "sqs", region)
    request.context["timestamp"] = headers["x-amz-date"]
    canonical = auth.canonical_request(request)
    return auth.signature(auth.string_to_sign(request, canonical), request)


def test_signature_equals_botocores() -> None:
    payload = json.dumps({"QueueUrl": "https://sqs.eu-west-1.amazonaws.com/1/wo-x-input",
                          "AttributeNames": ["ApproximateNumberOfMessages"]}).encode()
    at = datetime(2026, 11, 29, 23, 59, 59, tzinfo=UTC)
    cases = [
        ("https://sqs.eu-west-1.amazonaws.com/", "sqs.eu-west-1.amazonaws.com", "eu-west-1",
         ReadOnlyCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", None)),
        ("http://127.0.0.1:4566/", "127.0.0.1:4566", "us-east-1",
         ReadOnlyCredentials("ASIAEXAMPLE", "secret", "session-token/with+chars==")),
    ]
    for url, host, region, credentials in cases:
        signer = Signer(host, region)
        headers = signer.headers(payload, credentials, at)
        assert headers["x-amz-date"] == "20261129T235959Z"
        expected = botocore_signature(url, payload, credentials, region, headers)
        assert headers["authorization"].endswith(f"Signature={expected}")
        assert f"Credential={credentials.access_key}/20261129/{region}/sqs/aws4_request" in \
            headers["authorization"]
        # The cached signing key is per day: the next day signs with a new one.
        later = signer.headers(payload, credentials, datetime(2026, 11, 30, 0, 0, 1, tzinfo=UTC))
        assert later["authorization"].endswith(
            "Signature=" + botocore_signature(url, payload, credentials, region, later))
