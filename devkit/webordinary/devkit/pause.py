"""A pause-like container for the local kubelet: answers the editor's probes, does nothing.

Tests of the operator (and its benchmark) run it instead of the editor, so that a wake is
measured up to a ready pod without starting Claude Code and Astro. `PAUSE_EXIT`
makes it exit with that code at once (a crashing container).
"""

from __future__ import annotations

import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType


class _Probes(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        code = 200 if self.path in ("/readyz", "/healthz") else 404
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


def main() -> None:
    code = os.environ.get("PAUSE_EXIT")
    if code:
        sys.exit(int(code))
    port = int(os.environ.get("WEBORDINARY_METRICS_PORT", "9090"))
    server = ThreadingHTTPServer(("127.0.0.1", port), _Probes)

    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
