"""moto for a benchmark, in a process of its own, counting SQS calls by action as it serves
them (GET /bench/sqs-counts answers {"counts": {...}, "errors": {"Action status": n}}).

A counting proxy in front of moto forwarded every call through the bench's own process, which
also hosts the API emulator: per environment created, three CreateQueue calls parsed, sent on
and answered again there, competing with the emulator for its interpreter. Counting here costs
a dictionary update per call. Prints the endpoint URL, then serves until its parent ends.
"""

import json
import os
import threading
import time
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


def main() -> None:
    parent = os.getppid()
    moto = start_moto()
    moto.server.app = counting(moto.server.app)  # type: ignore[attr-defined]
    print(moto.endpoint_url, flush=True)
    while os.getppid() == parent:  # ends with the bench
        time.sleep(1)


if __name__ == "__main__":
    main()
