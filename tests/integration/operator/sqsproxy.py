"""A tiny HTTP proxy in front of moto that counts SQS actions and can inject AWS errors.

It speaks plain HTTP both ways (the operator's boto3 client just gets its URL as the SQS
endpoint), so the code under test is not patched.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse


@dataclass
class Fault:
    status: int
    code: str
    remaining: int  # -1: forever


@dataclass
class SqsProxy:
    upstream: str
    counts: Counter[str] = field(default_factory=Counter)
    created: Counter[str] = field(default_factory=Counter)  # CreateQueue calls per QueueName
    errors: Counter[str] = field(default_factory=Counter)  # "Action status" of upstream errors
    faults: dict[str, Fault] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def fail(self, action: str, *, status: int = 500, code: str = "InternalFailure",
             times: int = -1) -> None:
        """Answer `action` with an AWS error `times` times (-1: until cleared)."""
        with self.lock:
            self.faults[action] = Fault(status, code, times)

    def clear(self) -> None:
        with self.lock:
            self.faults.clear()

    def _fault_for(self, action: str) -> Fault | None:
        with self.lock:
            self.counts[action] += 1
            fault = self.faults.get(action)
            if fault is None or fault.remaining == 0:
                return None
            if fault.remaining > 0:
                fault.remaining -= 1
            return fault

    def start(self) -> SqsProxy:
        proxy = self
        target = urlparse(self.upstream)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # head and body are two writes (no 40 ms ACK wait)

            def log_message(self, format: str, *args: object) -> None:
                return

            upstream: http.client.HTTPConnection | None = None

            def _forward(self, body: bytes, headers: dict[str, str]
                         ) -> tuple[http.client.HTTPResponse, bytes]:
                """One kept-alive upstream connection per client connection (a new one if
                the kept one was closed meanwhile)."""
                while True:
                    reused = self.upstream is not None
                    if self.upstream is None:
                        self.upstream = http.client.HTTPConnection(
                            target.hostname or "127.0.0.1", target.port, timeout=30)
                    try:
                        self.upstream.request("POST", self.path, body=body, headers=headers)
                        response = self.upstream.getresponse()
                        return response, response.read()
                    except (ConnectionError, http.client.HTTPException):
                        self.upstream.close()
                        self.upstream = None
                        if not reused:
                            raise

            def finish(self) -> None:
                if self.upstream is not None:
                    self.upstream.close()
                super().finish()

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                action = (self.headers.get("X-Amz-Target") or "").rsplit(".", 1)[-1] or "?"
                if action == "CreateQueue":
                    with proxy.lock:
                        proxy.created[str(json.loads(body or b"{}").get("QueueName"))] += 1
                fault = proxy._fault_for(action)
                if fault is not None:
                    payload = json.dumps({"__type": f"com.amazonaws.sqs#{fault.code}",
                                          "message": f"injected {fault.code}"}).encode()
                    self.send_response(fault.status)
                    self.send_header("Content-Type", "application/x-amz-json-1.0")
                    self.send_header("x-amzn-query-error", f"{fault.code};Sender")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                response, data = self._forward(body, headers)
                if response.status >= 400:
                    with proxy.lock:
                        proxy.errors[f"{action} {response.status}"] += 1
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("content-length", "connection", "transfer-encoding",
                                           "server", "date"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # the default 5 resets connections under a burst

            def handle_error(self, request: object, client_address: object) -> None:
                return  # a client killed mid-request (the crash test) is expected

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True,
                         name="sqs-proxy").start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
