"""moto for a benchmark, in a process of its own, counting SQS calls by action as it serves
them (GET /bench/sqs-counts answers {"counts": {...}, "errors": {"Action status": n}}).

A counting proxy in front of moto forwarded every call through the bench's own process, which
also hosts the API emulator: per environment created, three CreateQueue calls parsed, sent on
and answered again there, competing with the emulator for its interpreter. Counting here costs
a dictionary update per call. Prints the endpoint URL, then serves until its parent ends.

Before it prints the URL, moto is warmed up (`warm_up`): moto imports its SQS backend, loads
botocore's service and error models and builds its per-account backends on the first calls it
serves (~0.4 CPU-s), which a long-running SQS endpoint has long done; in a burst that one-time
cost landed among the first environments' calls, and at n=1,000 it was a sixth of moto's CPU
until Ready. Its calls are not counted.
"""

import http.client
import json
import os
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from webordinary.devkit.aws import start_moto

COUNTS_PATH = "/bench/sqs-counts"


def counting(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """A WSGI middleware: each call's action (X-Amz-Target) and error status counted."""
    counts: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    lock = threading.Lock()

    def serve(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == COUNTS_PATH:
            with lock:
                body = json.dumps({"counts": counts, "errors": errors}).encode()
            start_response("200 OK", [("Content-Type", "application/json"),
                                      ("Content-Length", str(len(body)))])
            return [body]
        action = (environ.get("HTTP_X_AMZ_TARGET") or "").rsplit(".", 1)[-1] or "?"
        with lock:
            counts[action] += 1

        def respond(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if int(status[:3]) >= 400:
                with lock:
                    errors[f"{action} {status[:3]}"] += 1
            return start_response(status, headers, exc_info)

        return app(environ, respond)

    return serve


def warm_up(endpoint_url: str) -> None:
    """The calls that make moto load what it loads on first use: a listing (no queue yet) and a
    lookup of a queue that does not exist (moto's error path)."""
    url = urllib.parse.urlsplit(endpoint_url)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=60)
    try:
        for action, body in (("ListQueues", {}), ("GetQueueUrl", {"QueueName": "warm-up"})):
            connection.request("POST", "/", body=json.dumps(body).encode(), headers={
                "Content-Type": "application/x-amz-json-1.0",
                "X-Amz-Target": f"AmazonSQS.{action}",
                "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/sqs/"
                                 "aws4_request, SignedHeaders=host, Signature=warm-up"})
            connection.getresponse().read()
    finally:
        connection.close()


def main() -> None:
    parent = os.getppid()
    moto = start_moto()
    warm_up(moto.endpoint_url)
    moto.server.app = counting(moto.server.app)  # type: ignore[attr-defined]
    print(moto.endpoint_url, flush=True)
    while os.getppid() == parent:  # ends with the bench
        time.sleep(1)


if __name__ == "__main__":
    main()
