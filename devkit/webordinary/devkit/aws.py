"""moto server over real HTTP: SQS, SES and S3 for tests and local runs."""

from __future__ import annotations

import json
import logging
import os
import urllib.request
from dataclasses import dataclass
from typing import Any

from moto.server import ThreadedMotoServer

REGION = "us-east-1"
# moto accepts any credentials; fixed ones keep boto3 from looking for real ones.
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}


@dataclass
class MotoServer:
    """A running moto server and its endpoint URL."""

    server: ThreadedMotoServer
    endpoint_url: str

    def reset(self) -> None:
        """Drop every queue, message and sent mail (moto's own reset API)."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def sent_emails(self) -> list[dict[str, Any]]:
        """Mail sent through SES so far (moto keeps it instead of delivering)."""
        with urllib.request.urlopen(f"{self.endpoint_url}/moto-api/data.json", timeout=10) as r:
            data: dict[str, Any] = json.load(r)
        ses = data.get("ses", {})
        return list(ses.get("Message", [])) + list(ses.get("RawMessage", []))

    def stop(self) -> None:
        self.server.stop()


def start_moto(host: str = "127.0.0.1", port: int = 0) -> MotoServer:
    """Start moto on a free loopback port and export fake credentials for boto3."""
    for key, value in FAKE_CREDENTIALS.items():
        os.environ.setdefault(key, value)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log line per request
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    bound_host, bound_port = server.get_host_and_port()
    return MotoServer(server=server, endpoint_url=f"http://{bound_host}:{bound_port}")
