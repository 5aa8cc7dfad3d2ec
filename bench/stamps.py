"""A burst of stamp merge patches, one per EditEnvironment, sent from a process of its own.

What Hermes does per environment in production (one annotation merge patch: a wake request or
an activity stamp), sent as fast as a lean keep-alive HTTP/1.1 client can over a few
connections, so that a bench measures the API server and the operator, not its own client (the
benches host the API emulator in their own process: a sender there competes with it).

    python -P bench/stamps.py URL wake|activity NAMES_FILE [--connections 32]

URL is the collection (`.../namespaces/NS/editenvironments`). The process connects, prints
`ready`, waits for a line on stdin, sends, and prints one JSON object: `first` (time.time() the
first request was written), `last_ack` (the last answer read), `stamps` ({name: time of its
stamp}) and `failed` ({name: status line} of answers that were not 200).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse
import asyncio
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from webordinary.contracts.activity import activity_patch, wake_patch

PATCHES: dict[str, Callable[[datetime], dict[str, Any]]] = {
    "wake": wake_patch, "activity": activity_patch}


async def answer(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One HTTP/1.1 answer: its status line and body (Content-Length or chunked)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status, _, rest = head.partition(b"\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in
               (line.partition(b":") for line in rest.split(b"\r\n") if line)}
    if b"content-length" in headers:
        return status, await reader.readexactly(int(headers[b"content-length"]))
    if headers.get(b"transfer-encoding", b"").lower() != b"chunked":
        raise ValueError(f"answer without a length: {head!r}")
    body = b""
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        body += await reader.readexactly(size + 2)
        if size == 0:
            return status, body


async def send(url: str, patch: Callable[[datetime], dict[str, Any]], names: list[str],
               connections: int) -> dict[str, Any]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    streams = [await asyncio.open_connection(host, port) for _ in range(connections)]
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    todo: Iterator[str] = iter(names)
    stamps: dict[str, float] = {}
    failed: dict[str, str] = {}
    first: list[float] = []
    last_ack = 0.0

    async def worker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal last_ack
        for name in todo:
            at = datetime.now(UTC)
            body = json.dumps(patch(at), separators=(",", ":")).encode()
            writer.write(
                f"PATCH {parts.path}/{name} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                "Content-Type: application/merge-patch+json\r\nAccept: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            if not first:
                first.append(at.timestamp())
            status, _ = await answer(reader)
            last_ack = time.time()
            if status.split(b" ")[1] != b"200":
                failed[name] = status.decode(errors="replace")
            else:
                stamps[name] = at.timestamp()
        writer.close()

    await asyncio.gather(*(worker(r, w) for r, w in streams))
    return {"first": first[0] if first else None, "last_ack": last_ack, "stamps": stamps,
            "failed": failed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("patch", choices=sorted(PATCHES))
    parser.add_argument("names", help="a file with one environment name per line")
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    with open(args.names) as file:
        names = [line.strip() for line in file if line.strip()]
    result = asyncio.run(send(args.url, PATCHES[args.patch], names, args.connections))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
