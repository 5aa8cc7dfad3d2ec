"""The Messages API stand-in over real HTTP: SSE shape, scripts, errors, stalls, the demo."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from webordinary.devkit.messages_api import (
    MessagesAPI,
    demo_turn,
    edit,
    error,
    read,
    stall,
    text,
    tools,
)


def post(api: MessagesAPI, body: dict[str, Any]) -> tuple[int, str]:
    request = urllib.request.Request(
        f"{api.base_url}/v1/messages?beta=true", data=json.dumps(body).encode(),
        headers={"content-type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def events(raw: str) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in raw.splitlines() if line.startswith("data: ")]


def request_body(cwd: str = "/site", say: str = "Do it") -> dict[str, Any]:
    return {"model": "m", "stream": True, "tools": [{"name": "Read"}],
            "system": [{"type": "text", "text": "You are Claude"}],
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": f"<system-reminder>\n - Primary working directory: "
                                         f"{cwd}\n</system-reminder>"},
                {"type": "text", "text": say}]}]}


def test_a_scripted_tool_turn_streams_in_order_with_absolute_paths(
        messages_api: MessagesAPI) -> None:
    messages_api.push(tools(read("src/a.astro"), edit("src/a.astro", "x", "y")))
    status, raw = post(messages_api, request_body("/work/site"))
    assert status == 200
    kinds = [e["type"] for e in events(raw)]
    assert kinds[:2] == ["message_start", "ping"]
    assert kinds[-2:] == ["message_delta", "message_stop"]
    assert events(raw)[-2]["delta"]["stop_reason"] == "tool_use"
    starts = [e["content_block"] for e in events(raw) if e["type"] == "content_block_start"]
    assert [b["name"] for b in starts] == ["Read", "Edit"]
    partial = "".join(e["delta"].get("partial_json", "") for e in events(raw)
                      if e["type"] == "content_block_delta" and e["index"] == 0)
    assert json.loads(partial) == {"file_path": "/work/site/src/a.astro"}
    assert messages_api.requests[0].query == {"beta": "true"}
    assert messages_api.requests[0].cwd == "/work/site"


def test_text_turn_errors_and_the_empty_script(messages_api: MessagesAPI) -> None:
    messages_api.push(text("Hello there"), error(529, "overloaded_error", "busy"))
    status, raw = post(messages_api, request_body())
    said = "".join(e["delta"].get("text", "") for e in events(raw)
                   if e["type"] == "content_block_delta")
    assert (status, said) == (200, "Hello there")
    assert events(raw)[-2]["delta"]["stop_reason"] == "end_turn"
    status, raw = post(messages_api, request_body())
    assert status == 529
    assert json.loads(raw)["error"] == {"type": "overloaded_error", "message": "busy"}
    assert post(messages_api, request_body())[0] == 500


def test_a_stalled_turn_waits_for_release(messages_api: MessagesAPI) -> None:
    messages_api.push(stall())
    answer: list[tuple[int, str]] = []
    worker = threading.Thread(target=lambda: answer.append(post(messages_api, request_body())))
    worker.start()
    messages_api.wait_for(lambda: messages_api.stalls_started == 1, timeout=5)
    time.sleep(0.3)
    assert not answer
    messages_api.release()
    worker.join(5)
    assert answer
    assert answer[0][0] == 200
    assert messages_api.stalls_ended


def test_side_requests_without_tools_do_not_consume_the_script(
        messages_api: MessagesAPI) -> None:
    messages_api.push(text("scripted"))
    side = request_body()
    side.pop("tools")
    post(messages_api, side)
    assert messages_api.pending() == 1
    assert [r.turn for r in messages_api.requests] == ["side"]


@pytest.mark.parametrize("page", ["src/pages/index.astro", "index.html"])
def test_the_demo_reads_then_inserts_the_instruction_then_summarizes(
        tmp_path: Path, page: str) -> None:
    (tmp_path / page).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / page).write_text("<Base>\n  <h1>Hi</h1>\n</Base>\n")
    body = request_body(str(tmp_path), "Add <b>{sale}</b>")
    first = demo_turn(body)
    assert [c.name for c in first.tools] == ["Read"]
    body["messages"].append({"role": "assistant", "content": []})
    body["messages"].append({"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_demo_read_1", "content": "..."}]})
    second = demo_turn(body)
    [change] = second.tools
    assert change.input["old_string"] == "</Base>\n"
    assert change.input["new_string"] == "<p>Add &lt;b&gt;&#123;sale&#125;&lt;/b&gt;</p>\n</Base>\n"
    body["messages"][-1]["content"][0]["tool_use_id"] = "toolu_demo_edit_2"
    assert demo_turn(body).text.startswith("Added the requested text")
