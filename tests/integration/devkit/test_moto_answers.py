"""The devkit's moto answers every request as moto's own server does: its speed-ups (remembered
helpers, the cached dispatch, the lean request path) change the CPU per call, not an answer.

The same requests go to `start_moto` and to moto's stock `ThreadedMotoServer` in a process of
its own (no devkit code loaded): SQS in both protocols, SES, S3, moto's own API and requests
no service claims. Status, headers and bodies must match, apart from what differs between any
two runs (request ids, dates, the endpoint's port).
"""

from __future__ import annotations

import http.client
import io
import json
import random
import re
import string
import subprocess
import sys
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode, urlparse

import pytest
from moto.core.request import EnvironHeaders as MotoEnvironHeaders
from moto.moto_api._internal.moto_random import MotoRandom
from moto.moto_server.werkzeug_app import create_backend_app
from werkzeug.datastructures import EnvironHeaders as WerkzeugEnvironHeaders
from werkzeug.exceptions import RequestEntityTooLarge

from webordinary.devkit.aws import MotoServer, lane_request_class, plain_headers, start_moto

STOCK = (
    "import sys\n"
    "from moto.server import ThreadedMotoServer\n"
    "server = ThreadedMotoServer(ip_address='127.0.0.1', port=0, verbose=False)\n"
    "server.start()\n"
    "print('http://%s:%d' % server.get_host_and_port(), flush=True)\n"
    "sys.stdin.read()\n"
)


def auth(service: str) -> dict[str, str]:
    return {"Authorization": f"AWS4-HMAC-SHA256 Credential=testing/20261129/us-east-1/{service}/"
                             "aws4_request, SignedHeaders=host, Signature=x"}


def sqs_json(action: str, body: dict[str, Any]) -> tuple[str, str, bytes, dict[str, str]]:
    return ("POST", "/", json.dumps(body).encode(), {
        **auth("sqs"), "X-Amz-Target": f"AmazonSQS.{action}",
        "Content-Type": "application/x-amz-json-1.0"})


def query(service: str, params: dict[str, str], host: str | None = None
          ) -> tuple[str, str, bytes, dict[str, str]]:
    headers = {**auth(service), "Content-Type": "application/x-www-form-urlencoded"}
    if host:
        headers["Host"] = host
    return ("POST", "/", urlencode(params).encode(), headers)


DLQ_ARN = "arn:aws:sqs:us-east-1:123456789012:wo-t-dlq"
TAGS = {"webordinary.dev/name": "t", "webordinary.dev/uid": "u-1"}
REQUESTS = [
    sqs_json("CreateQueue", {"QueueName": "wo-t-dlq", "tags": TAGS, "Attributes": {
        "VisibilityTimeout": "300", "MessageRetentionPeriod": "1209600"}}),
    sqs_json("CreateQueue", {"QueueName": "wo-t-input", "tags": TAGS, "Attributes": {
        "VisibilityTimeout": "300", "RedrivePolicy": json.dumps(
            {"deadLetterTargetArn": DLQ_ARN, "maxReceiveCount": 5})}}),
    sqs_json("CreateQueue", {"QueueName": "wo-t-input", "Attributes": {  # differing: an error
        "VisibilityTimeout": "30"}}),
    sqs_json("CreateQueue", {"QueueName": "wo-t-x", "Attributes": {"RedrivePolicy": json.dumps(
        {"deadLetterTargetArn": DLQ_ARN + "-none", "maxReceiveCount": 5})}}),
    sqs_json("CreateQueue", {"QueueName": "not a name"}),
    sqs_json("CreateQueue", {"QueueName": "wo-t-b", "Attributes": {"NoSuchAttribute": "1"}}),
    sqs_json("ListQueueTags", {"QueueUrl": "QUEUE/wo-t-input"}),
    sqs_json("GetQueueUrl", {"QueueName": "wo-t-none"}),
    sqs_json("ListQueues", {"QueueNamePrefix": "wo-"}),
    sqs_json("SendMessage", {"QueueUrl": "QUEUE/wo-t-input", "MessageBody": "hello"}),
    sqs_json("NoSuchAction", {}),
    ("POST", "/?x=1", *sqs_json("ListQueues", {})[2:]),
    ("POST", "/", sqs_json("ListQueues", {})[2], {**sqs_json("ListQueues", {})[3],
                                                   "Origin": "https://example.com"}),
    ("OPTIONS", "/", b"", {"Origin": "https://example.com", **auth("sqs"),
                           "Access-Control-Request-Method": "POST"}),
    ("POST", "/", b"{not json", sqs_json("ListQueues", {})[3]),
    query("sqs", {"Action": "ListQueues", "Version": "2012-11-05"}),
    query("sqs", {"Action": "GetQueueUrl", "QueueName": "wo-t-dlq", "Version": "2012-11-05"},
          host="sqs.us-east-1.amazonaws.com"),
    query("email", {"Action": "SendEmail", "Source": "a@example.com",
                    "Destination.ToAddresses.member.1": "b@example.com",
                    "Message.Subject.Data": "s", "Message.Body.Text.Data": "t"}),
    query("email", {"Action": "VerifyEmailIdentity", "EmailAddress": "a@example.com"}),
    query("email", {"Action": "ListIdentities"}),
    ("PUT", "/wo-bucket", b"", auth("s3")),
    ("PUT", "/wo-bucket/a/key.txt", b"some bytes", {**auth("s3"), "Content-Type": "text/plain"}),
    ("GET", "/wo-bucket/a/key.txt", b"", auth("s3")),
    ("HEAD", "/wo-bucket/a/key.txt", b"", auth("s3")),
    ("GET", "/wo-bucket/missing", b"", auth("s3")),
    ("PUT", "/wo-bucket/meta", b"x", {**auth("s3"), "x-amz-meta-my_key": "v", "X-Amz-Meta-B": "w"}),
    ("HEAD", "/wo-bucket/meta", b"", auth("s3")),
    ("GET", "/wo-bucket?list-type=2", b"", auth("s3")),
    ("GET", "/", b"", {}),
    ("GET", "/nothing/here", b"", {}),
    ("POST", "/", b"Action=Nope", {"Content-Type": "application/x-www-form-urlencoded"}),
    ("GET", "/", b"", {"Host": "nothing.example.com"}),
    ("GET", "/", b"", {"Host": "unknown.us-east-1.amazonaws.com"}),
    ("GET", "/moto-api/", b"", {}),
]

RANDOM = [  # what differs between any two runs of the same requests
    (re.compile(rb"(<RequestId>|<MessageId>|\"MessageId\": \"|<ETag>&#34;)[^<\"&]*"), rb"\1?"),
    (re.compile(rb"(<LastModified>|<CreationDate>)[^<]*"), rb"\1?"),
    (re.compile(rb"\"(MD5OfMessageBody|MessageId)\": \"[^\"]*\""), rb'"\1": "?"'),
]
RANDOM_HEADERS = {"date", "x-amzn-requestid", "x-amz-request-id", "x-amz-id-2", "last-modified",
                  "connection", "content-length"}


@pytest.fixture
def stock() -> Iterator[str]:
    process = subprocess.Popen([sys.executable, "-c", STOCK], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert process.stdout is not None
    assert process.stdin is not None
    try:
        yield process.stdout.readline().strip()
    finally:
        process.stdin.close()
        process.wait(timeout=30)


@pytest.fixture
def devkit() -> Iterator[MotoServer]:
    server = start_moto()
    server.reset()  # moto's state lives in this process: an earlier test's queues and buckets
    yield server
    server.stop()


def answer(endpoint: str, method: str, path: str, body: bytes, headers: dict[str, str]
           ) -> tuple[int, list[tuple[str, str]], bytes]:
    """One request on a connection of its own; the answer with what is random taken out."""
    url = urlparse(endpoint)
    body = body.replace(b"QUEUE/", f"{endpoint}/123456789012/".encode())
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=30)
    try:
        connection.request(method, path, body=body or None, headers=headers)
        response = connection.getresponse()
        content = response.read()
        names = sorted((name.lower(), value) for name, value in response.getheaders()
                       if name.lower() not in RANDOM_HEADERS)
    finally:
        connection.close()
    content = content.replace(endpoint.encode(), b"ENDPOINT").replace(
        endpoint.split("//", 1)[1].encode(), b"HOSTPORT")
    for pattern, replacement in RANDOM:
        content = pattern.sub(replacement, content)
    return response.status, names, content


def test_every_answer_is_stock_motos(stock: str, devkit: MotoServer) -> None:
    for request in REQUESTS:
        ours = answer(devkit.endpoint_url, *request)
        theirs = answer(stock, *request)
        assert ours == theirs, request[:2]


def test_answers_stay_the_same_when_repeated(stock: str, devkit: MotoServer) -> None:
    """What the speed-ups remember (names, a backend per host) does not leak into the next
    answer: the same requests again, interleaved, still answer as stock moto's."""
    for _ in range(2):
        for request in REQUESTS:
            assert answer(devkit.endpoint_url, *request) == answer(stock, *request), request[:2]


HEADER_BLOCKS = [  # (header lines, whether the fast path takes them)
    ([b"content-type: application/x-amz-json-1.0\r\n", b"host: 127.0.0.1:5000\r\n"], True),
    ([b"A: trailing spaces  \r\n", b"B:\r\n", b"C:\t tabbed\r\n", b"c: again\r\n"], True),
    ([b"A: form\x0cfeed \x85 next-line \xe9\r\n"], True),
    ([b"x-amz-meta-my_key: v\r\n"], True),
    ([], True),
    ([b"A: one\r\n", b" folded\r\n"], False),
    ([b"A: bare\rreturn\r\n"], False),
    ([b"no colon here\r\n"], False),
    ([b": empty name\r\n"], False),
    ([b"From someone\r\n", b"A: b\r\n"], False),
    ([b"Content-Type: multipart/form-data; boundary=x\r\n"], False),
    ([b"A: lf only\n"], False),
]


@pytest.mark.parametrize(("lines", "fast"), HEADER_BLOCKS)
def test_plain_headers_are_what_http_client_parses(lines: list[bytes], fast: bool) -> None:
    """The request handler's header fast path builds exactly http.client's HTTPMessage, or
    leaves the block to http.client."""
    block = [*lines, b"\r\n"]
    ours = plain_headers(block, http.client.HTTPMessage)
    assert (ours is not None) == fast
    if ours is not None:
        assert vars(ours) == vars(http.client.parse_headers(io.BytesIO(b"".join(block))))


@pytest.mark.parametrize(("digits", "lower"), [(True, False), (False, False), (True, True)])
def test_a_seeded_moto_draws_the_same_ids(devkit: MotoServer, digits: bool, lower: bool) -> None:
    """Request ids come from moto's generator as before: the same seed, the same ids."""
    ours = MotoRandom()
    ours.seed(7)
    stock = random.Random(7)
    pool = string.ascii_letters + (string.digits if digits else "")
    for length in (52, 20, 1):
        expected = "".join(stock.choice(pool) for _ in range(length))
        assert ours.get_random_string(length, include_digits=digits, lower_case=lower) == (
            expected.lower() if lower else expected)


def test_the_lean_lanes_request_limits_are_flasks(devkit: MotoServer) -> None:
    """SQS's lane serves requests outside Flask's contexts; its request class reads the same
    limits Flask's reads inside one, from the app's config."""
    app = create_backend_app("sqs")
    app.config["MAX_CONTENT_LENGTH"] = 10
    body = b'{"QueueName": "a-long-enough-name"}'
    environ = {"REQUEST_METHOD": "POST", "wsgi.input": io.BytesIO(body), "SERVER_NAME": "x",
               "SERVER_PORT": "1", "wsgi.url_scheme": "http", "CONTENT_LENGTH": str(len(body)),
               "CONTENT_TYPE": "application/x-amz-json-1.0"}
    ours = lane_request_class(app)(dict(environ))
    with app.app_context():
        theirs = app.request_class(dict(environ))
        limits = [(theirs.max_content_length, theirs.max_form_memory_size,
                   theirs.max_form_parts)]
        with pytest.raises(RequestEntityTooLarge):
            theirs.get_data(parse_form_data=True)
    assert limits == [(ours.max_content_length, ours.max_form_memory_size, ours.max_form_parts)]
    assert limits[0][0] == 10
    with pytest.raises(RequestEntityTooLarge):  # the body is longer than the app allows
        ours.get_data(parse_form_data=True)
    ours.max_content_length = 5
    assert ours.max_content_length == 5


@pytest.mark.parametrize("key", ["Content-Type", "content-length", "X-Amz-Target", "x-amz-date",
                                 "Origin", "x-moto-account-id", "X_AMZ_TARGET", "", 3, None])
def test_moto_headers_answer_as_werkzeugs(devkit: MotoServer, key: Any) -> None:
    """moto's request headers (lookups without an exception for an absent header) answer get,
    `in` and [] as werkzeug's own EnvironHeaders over the same environ."""
    environ = {"CONTENT_TYPE": "application/x-amz-json-1.0", "CONTENT_LENGTH": "12",
               "HTTP_X_AMZ_TARGET": "AmazonSQS.CreateQueue", "HTTP_X_AMZ_DATE": "x",
               "moto.preserved_header_names": {}}
    ours, theirs = MotoEnvironHeaders(environ), WerkzeugEnvironHeaders(environ)
    assert ours.get(key) == theirs.get(key)
    assert ours.get(key, "d") == theirs.get(key, "d")
    assert ours.get(key, -1, type=int) == theirs.get(key, -1, type=int)
    assert (key in ours) == (key in theirs)
    try:
        expected: Any = theirs[key]
    except KeyError as error:
        expected = type(error)
    try:
        got: Any = ours[key]
    except KeyError as error:
        got = type(error)
    assert got == expected
    assert dict(iter(ours)) == dict(theirs)
