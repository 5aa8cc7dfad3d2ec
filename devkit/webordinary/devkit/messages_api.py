"""A scripted stand-in for the Anthropic Messages API, over real HTTP and SSE.

The real Claude Code CLI talks to it through ANTHROPIC_BASE_URL. Tests queue turns (text,
tool calls, a stalled turn, an HTTP error); with nothing queued it plays a deterministic demo
(read the site's index page, insert the instruction as a paragraph, summarize), so a local
run shows a visible change. Every request is recorded for assertions.
"""

from __future__ import annotations

import asyncio
import html
import itertools
import json
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

CWD_RE = re.compile(r"Primary working directory:\s*(\S+)")
DEMO_PAGES = ("src/pages/index.astro", "src/pages/index.md", "index.html", "public/index.html")
DEMO_ANCHORS = ("</main>", "</body>", "</html>")
CLOSING_TAG_RE = re.compile(r"</[A-Za-z][\w.-]*>")
DEMO_PREFIX = "toolu_demo_"
DEFAULT_MODEL = "claude-standin"

JsonDict = dict[str, Any]


@dataclass
class ToolCall:
    """One tool_use block. String values may use `{cwd}` for the request's working directory."""

    name: str
    input: JsonDict


@dataclass
class Turn:
    """One scripted assistant response (consumed by one main-loop request)."""

    text: str = ""
    tools: list[ToolCall] = field(default_factory=list)
    stall: bool = False
    error_status: int | None = None
    error_type: str = "api_error"
    error_message: str = "scripted failure"


def text(value: str) -> Turn:
    """An assistant turn that answers with text and ends the conversation turn."""
    return Turn(text=value)


def tools(*calls: ToolCall, say: str = "") -> Turn:
    """An assistant turn that asks for tool calls (stop_reason tool_use)."""
    return Turn(text=say, tools=list(calls))


def read(path: str) -> ToolCall:
    return ToolCall("Read", {"file_path": f"{{cwd}}/{path}"})


def edit(path: str, old: str, new: str) -> ToolCall:
    return ToolCall("Edit", {"file_path": f"{{cwd}}/{path}", "old_string": old, "new_string": new})


def write(path: str, content: str) -> ToolCall:
    return ToolCall("Write", {"file_path": f"{{cwd}}/{path}", "content": content})


def stall() -> Turn:
    """A turn that starts streaming, then hangs until the client goes away or `release()`."""
    return Turn(text="Working on it", stall=True)


def error(status: int = 500, kind: str = "api_error", message: str = "scripted failure") -> Turn:
    """An HTTP error answer (e.g. 500 api_error, 529 overloaded_error)."""
    return Turn(error_status=status, error_type=kind, error_message=message)


@dataclass
class Recorded:
    """A request as the stand-in saw it."""

    path: str
    query: dict[str, str]
    body: JsonDict
    at: float
    turn: str  # "scripted", "demo" or "side"
    api_key: str | None = None  # the x-api-key it came with (what a proxy put there)

    @property
    def cwd(self) -> str | None:
        return find_cwd(self.body)

    @property
    def session_id(self) -> str | None:
        """The CLI's session id, from metadata.user_id (a JSON string) when it sends one."""
        raw = (self.body.get("metadata") or {}).get("user_id")
        try:
            value = json.loads(raw).get("session_id") if isinstance(raw, str) else None
        except (json.JSONDecodeError, AttributeError):
            return None
        return value if isinstance(value, str) else None

    def transcript(self) -> str:
        """All message text (user, assistant, tool results) flattened for assertions."""
        return json.dumps(self.body.get("messages", []), ensure_ascii=False)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def find_cwd(body: JsonDict) -> str | None:
    """The CLI puts its cwd in the system prompt (or a system entry of the messages)."""
    for chunk in _strings([body.get("system"), body.get("messages")]):
        match = CWD_RE.search(chunk)
        if match:
            return match.group(1)
    return None


def is_side_request(body: JsonDict) -> bool:
    """Requests outside the agent loop (titles, summaries) advertise no tools."""
    return not body.get("tools")


def last_user_blocks(body: JsonDict) -> list[JsonDict]:
    messages = body.get("messages") or []
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return [{"type": "text", "text": content}]
            return [b for b in content if isinstance(b, dict)]
    return []


def last_instruction(body: JsonDict) -> str:
    """The newest user text that is not a CLI-injected reminder."""
    for message in reversed(body.get("messages") or []):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        for block in reversed(blocks):
            if block.get("type") != "text":
                continue
            value = str(block.get("text", "")).strip()
            if value and not value.startswith("<system-reminder>") and not value.startswith("["):
                return value
    return ""


def _fill(value: Any, cwd: str) -> Any:
    if isinstance(value, str):
        return value.replace("{cwd}", cwd)
    if isinstance(value, dict):
        return {k: _fill(v, cwd) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, cwd) for v in value]
    return value


def demo_turn(body: JsonDict) -> Turn:
    """The deterministic demo: Read the index page, Edit in a paragraph, then summarize."""
    cwd = find_cwd(body) or "."
    results = [b for b in last_user_blocks(body) if b.get("type") == "tool_result"]
    step = str(results[-1].get("tool_use_id", "")) if results else ""
    instruction = last_instruction(body)
    page = next((p for p in DEMO_PAGES if (Path(cwd) / p).is_file()), None)
    if page is None:
        return text("I could not find the site's index page to edit.")
    if not step.startswith(DEMO_PREFIX):
        return tools(read(page), say="Let me look at the page.")
    if step.startswith(f"{DEMO_PREFIX}read"):
        content = (Path(cwd) / page).read_text(encoding="utf-8")
        at = demo_anchor(content)
        if at is None:
            return text(f"{page} has no place to add a paragraph.")
        safe = html.escape(instruction).replace("{", "&#123;").replace("}", "&#125;")
        tail = content[at:]
        return tools(edit(page, tail, f"<p>{safe}</p>\n{tail}"))
    return text(f"Added the requested text as a paragraph to {page}.")


def demo_anchor(content: str) -> int | None:
    """Where the demo inserts: before </main> or </body>, else before the last closing tag."""
    for anchor in DEMO_ANCHORS:
        if anchor in content:
            return content.rindex(anchor)
    closing = list(CLOSING_TAG_RE.finditer(content))
    return closing[-1].start() if closing else None


def _sse(event: str, data: JsonDict) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


class MessagesAPI:
    """The server: `start()` in a background thread, script with `push()`, read `requests`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, demo: bool = True) -> None:
        self.host = host
        self.port = port
        self.demo = demo
        self.requests: list[Recorded] = []
        self.stalls_started = 0
        self.stalls_ended: list[float] = []  # when each stalled turn ended (client gone/release)
        self._turns: list[Turn] = []
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._stopping: asyncio.Event | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def push(self, *turns: Turn) -> None:
        """Queue turns; each main-loop request consumes the next one."""
        with self._lock:
            self._turns.extend(turns)

    def pending(self) -> int:
        with self._lock:
            return len(self._turns)

    def release(self) -> None:
        """Let every stalled turn finish (as an end_turn with its text)."""
        self._release.set()

    def main_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.turn != "side"]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 30.0) -> None:
        """Block until predicate() holds (polling); raises TimeoutError."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError("condition not met in time")
            time.sleep(0.02)

    def reset(self) -> None:
        with self._lock:
            self._turns.clear()
            self.requests.clear()
            self.stalls_started = 0
            self.stalls_ended.clear()
        self._release.clear()

    def start(self) -> MessagesAPI:
        self._thread = threading.Thread(target=self._run, name="messages-api", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the Messages API stand-in did not start")
        return self

    def stop(self) -> None:
        self._release.set()
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> MessagesAPI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/v1/messages/count_tokens", self._count_tokens)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        self._ready.set()
        await self._stopping.wait()
        await self._runner.cleanup()

    async def _count_tokens(self, request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response({"input_tokens": max(1, len(json.dumps(body)) // 4)})

    def _next_turn(self, body: JsonDict) -> tuple[Turn, str]:
        if is_side_request(body):
            return text("Website edit"), "side"
        with self._lock:
            if self._turns:
                return self._turns.pop(0), "scripted"
        if self.demo:
            return demo_turn(body), "demo"
        return error(500, "api_error", "no scripted turn left"), "scripted"

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        body: JsonDict = await request.json()
        turn, kind = self._next_turn(body)
        self.requests.append(Recorded(request.path, dict(request.query), body, time.time(), kind,
                                      request.headers.get("x-api-key")))
        if turn.error_status is not None:
            failure = {"type": turn.error_type, "message": turn.error_message}
            return web.json_response({"type": "error", "error": failure}, status=turn.error_status)
        cwd = find_cwd(body) or "."
        model = str(body.get("model") or DEFAULT_MODEL)
        blocks = self._blocks(turn, cwd)
        input_tokens = max(1, len(json.dumps(body.get("messages", []))) // 4)
        output_tokens = max(1, len(json.dumps(blocks)) // 4)
        stop_reason = "tool_use" if turn.tools else "end_turn"
        message_id = f"msg_standin_{next(self._ids)}"
        if not body.get("stream"):
            return web.json_response({
                "id": message_id, "type": "message", "role": "assistant", "model": model,
                "content": blocks, "stop_reason": stop_reason, "stop_sequence": None,
                "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
            })
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "Cache-Control": "no-cache",
                                               "request-id": f"req_{message_id}"})
        await response.prepare(request)
        await response.write(_sse("message_start", {"type": "message_start", "message": {
            "id": message_id, "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": 1}}}))
        await response.write(_sse("ping", {"type": "ping"}))
        if turn.stall:
            await self._stall(request, response, turn.text)
            if self._gone(request):
                return response
        for index, block in enumerate(blocks):
            await self._write_block(response, index, block)
        await response.write(_sse("message_delta", {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": output_tokens}}))
        await response.write(_sse("message_stop", {"type": "message_stop"}))
        await response.write_eof()
        return response

    def _blocks(self, turn: Turn, cwd: str) -> list[JsonDict]:
        blocks: list[JsonDict] = []
        if turn.text:
            blocks.append({"type": "text", "text": turn.text})
        for call in turn.tools:
            step = "read" if call.name == "Read" else call.name.lower()
            blocks.append({"type": "tool_use", "id": f"{DEMO_PREFIX}{step}_{next(self._ids)}",
                           "name": call.name, "input": _fill(call.input, cwd)})
        return blocks

    @staticmethod
    def _gone(request: web.Request) -> bool:
        transport = request.transport
        return transport is None or transport.is_closing()

    async def _stall(self, request: web.Request, response: web.StreamResponse, say: str) -> None:
        self.stalls_started += 1
        try:
            while not self._release.is_set() and not self._gone(request):
                await response.write(b": keep-alive\n\n")
                await asyncio.sleep(0.02)
        except (ConnectionError, RuntimeError):
            pass
        finally:
            self.stalls_ended.append(time.time())

    async def _write_block(self, response: web.StreamResponse, index: int, block: JsonDict) -> None:
        if block["type"] == "text":
            await response.write(_sse("content_block_start", {
                "type": "content_block_start", "index": index,
                "content_block": {"type": "text", "text": ""}}))
            value = block["text"]
            for start in range(0, len(value), 40):
                await response.write(_sse("content_block_delta", {
                    "type": "content_block_delta", "index": index,
                    "delta": {"type": "text_delta", "text": value[start:start + 40]}}))
        else:
            await response.write(_sse("content_block_start", {
                "type": "content_block_start", "index": index,
                "content_block": {"type": "tool_use", "id": block["id"], "name": block["name"],
                                  "input": {}}}))
            raw = json.dumps(block["input"])
            for start in range(0, len(raw), 200):
                await response.write(_sse("content_block_delta", {
                    "type": "content_block_delta", "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": raw[start:start + 200]}}))
        await response.write(_sse("content_block_stop", {"type": "content_block_stop",
                                                         "index": index}))


def main() -> None:
    """`python -m webordinary.devkit.messages_api [PORT]`: serve the demo script."""
    import sys

    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    # in a container: WEBORDINARY_MESSAGES_API_HOST=0.0.0.0
    host = os.environ.get("WEBORDINARY_MESSAGES_API_HOST", "127.0.0.1")
    api = MessagesAPI(host=host, port=port).start()
    print(api.base_url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        api.stop()


if __name__ == "__main__":
    main()
