"""Wake on visit, measured on `./dev up`'s stack (operator, Hermes, local kubelet, real editor).

An email makes an edit (so the session has a worktree and a preview), the environment is given
a short idle timeout and goes to sleep (the kubelet stops the editor process), then its signed
preview link is visited the way a browser does: the starting page, reloaded every second, until
the site itself answers. Used by bench/gateway.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import aiohttp
from yarl import URL

from webordinary.devkit.kubelet import free_port

ROOT = Path(__file__).resolve().parents[1]
EE = "/apis/webordinary.dev/v1alpha1/namespaces/webordinary/editenvironments"
SLICES = "/apis/discovery.k8s.io/v1/namespaces/webordinary/endpointslices"
IDLE = "20s"


def row(name: str, value: str) -> None:
    print(f"| {name:<62} | {value:>18} | {'':<18} |", flush=True)


async def _json(client: aiohttp.ClientSession, url: str) -> Any:
    async with client.get(url) as response:
        return await response.json()


async def measure_wake(rounds: int = 2) -> None:
    """Prints its rows of the gateway benchmark's table as they are measured."""
    with tempfile.TemporaryDirectory(prefix="bench-wake-") as folder:
        kube_port, gateway_port = free_port(), free_port()
        stack = subprocess.Popen(  # noqa: ASYNC220 (a long-lived child, read from a thread)
            [sys.executable, "-m", "webordinary.devkit.local", "--state", folder,
             "--kube-port", str(kube_port), "--smtp-port", str(free_port()),
             "--ingress-port", str(gateway_port), "--send", "Add a wake page"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            start_new_session=True)
        try:
            assert stack.stdout is not None
            link = ""
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and not link:
                line = await asyncio.to_thread(stack.stdout.readline)
                if line.startswith("{") and '"ok": true' in line:
                    link = json.loads(line)["preview"]
                if not line and stack.poll() is not None:
                    break
            if not link:
                row("wake on visit", "stack did not come up")
                return
            api = f"http://127.0.0.1:{kube_port}"
            async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as client:
                async with client.get(link, allow_redirects=False) as response:
                    clean = str(response.url.join(URL(response.headers["Location"])))
                    jar: SimpleCookie = SimpleCookie()
                    for header in response.headers.getall("Set-Cookie"):
                        jar.load(header)
                cookie = {"Cookie": "; ".join(f"{k}={v.value}" for k, v in jar.items()),
                          "Accept": "text/html"}
                name = (await _json(client, api + EE))["items"][0]["metadata"]["name"]
                async with client.patch(api + f"{EE}/{name}", data=json.dumps(
                        {"spec": {"idleTimeout": IDLE}}),
                        headers={"Content-Type": "application/merge-patch+json"}) as response:
                    assert response.status == 200, await response.text()
                for round_ in range(rounds):
                    asleep_at = await _asleep(client, api)
                    began = time.monotonic()
                    first_byte: float | None = None
                    status, seen = 0, [(0.0, "")]  # (seconds, page) at each change of page
                    while time.monotonic() - began < 180:
                        async with client.get(clean, headers=cookie) as response:
                            text = await response.text()
                            status = response.status
                        if first_byte is None and "Starting your preview" not in text:
                            first_byte = time.monotonic() - began
                        page = f"{status} {_title(text)}"
                        if page != seen[-1][1]:
                            seen.append((time.monotonic() - began, page))
                        if status == 200:
                            break
                        await asyncio.sleep(1.0)  # the starting page reloads every few seconds
                    served = time.monotonic() - began
                    row(f"wake on visit #{round_ + 1}: first visit -> editor answers",
                        f"{first_byte or served:.1f} s")
                    row("  first visit -> the site served (200)",
                        f"{served:.1f} s" if status == 200 else "not in 180 s")
                    for at, page in seen[1:]:
                        row(f"    {at:5.1f} s: {page}"[:62], "")
                    row(f"  (asleep {asleep_at:.0f} s after the idle wait)", "")
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(stack.pid, signal.SIGTERM)
            try:
                await asyncio.to_thread(stack.wait, 120)
            except subprocess.TimeoutExpired:
                os.killpg(stack.pid, signal.SIGKILL)


def _title(html: str) -> str:
    """What a page says it is: its <title> (or the start of a plain-text answer)."""
    start = html.find("<title>")
    if start < 0:
        return html[:40].strip().replace("\n", " ")
    return html[start + 7:html.find("</title>", start)].strip()[:40]


async def _asleep(client: aiohttp.ClientSession, api: str) -> float:
    """Wait (without visiting: a visit is activity) until the editor's endpoint is gone."""
    began = time.monotonic()
    while time.monotonic() - began < 300:
        await asyncio.sleep(1.0)
        slices = await _json(client, api + SLICES)
        if not any(s.get("endpoints") for s in slices.get("items", [])):
            return time.monotonic() - began
    raise TimeoutError("the environment did not go to sleep")
