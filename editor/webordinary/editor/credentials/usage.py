"""Token counts from Messages API answers (JSON or server-sent events): pure parsing."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

_INPUT_KEYS = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


@dataclass
class Tokens:
    """Input (prompt, cache writes and reads included) and output tokens of one or more calls."""

    input: int = 0
    output: int = 0

    def add(self, other: Tokens) -> None:
        self.input += other.input
        self.output += other.output


def _count(usage: Any, key: str) -> int:
    value = usage.get(key) if isinstance(usage, dict) else None
    return value if isinstance(value, int) and value >= 0 else 0


def from_message(body: Any) -> Tokens:
    """The usage of a non-streamed answer (`{"type": "message", "usage": {...}}`)."""
    usage = body.get("usage") if isinstance(body, dict) else None
    return Tokens(sum(_count(usage, k) for k in _INPUT_KEYS), _count(usage, "output_tokens"))


class StreamMeter:
    """Reads an SSE stream chunk by chunk (bytes pass through untouched elsewhere).

    `message_start` carries the input usage, every `message_delta` the cumulative output
    tokens; the last value seen counts.
    """

    def __init__(self) -> None:
        self._buffer = b""
        self.tokens = Tokens()

    def feed(self, chunk: bytes) -> None:
        self._buffer += chunk
        while True:
            end = self._buffer.find(b"\n\n")
            if end < 0:
                if len(self._buffer) > 1 << 20:  # a malformed stream never grows without bound
                    self._buffer = b""
                return
            event, self._buffer = self._buffer[:end], self._buffer[end + 2:]
            self._event(event)

    def _event(self, raw: bytes) -> None:
        data = b"".join(line[5:].strip() for line in raw.splitlines() if line.startswith(b"data:"))
        if not data:
            return
        try:
            payload = json.loads(data)
        except ValueError:
            return
        if not isinstance(payload, dict):
            return
        if payload.get("type") == "message_start":
            message = payload.get("message")
            usage = message.get("usage") if isinstance(message, dict) else None
            self.tokens.input = sum(_count(usage, k) for k in _INPUT_KEYS)
            self.tokens.output = max(self.tokens.output, _count(usage, "output_tokens"))
        elif payload.get("type") == "message_delta":
            usage = payload.get("usage")
            self.tokens.output = max(self.tokens.output, _count(usage, "output_tokens"))
            extra = sum(_count(usage, k) for k in _INPUT_KEYS)
            self.tokens.input = max(self.tokens.input, extra)
