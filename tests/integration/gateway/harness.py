"""The gateway as a real process against the API emulator, and editor stand-ins behind it.

An editor stand-in is what the gateway sees of an editor pod: one HTTP port that serves every
session's preview under `/session/{threadId}/` (pages, streamed assets, an echo for uploads and
Vite's HMR websocket with its `vite-hmr` subprotocol). EndpointSlices point at it exactly as the
control plane's EndpointSlice controller would for the editor Service.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from webordinary.contracts.environment import API_VERSION, KIND, PLURAL
from webordinary.contracts.links import LinkKeys, keys_from_mapping, sign
from webordinary.contracts.naming import child_name
from webordinary.devkit.kubelet import free_port

NAMESPACE = "tenants"
ASSET = bytes(range(256)) * 8192  # 2 MiB


def asset_bytes() -> bytes:
    return ASSET


@dataclass
class Editor:
    """An editor pod's preview port: records what reached it."""

    environment: str
    seen: list[dict[str, str]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    runner: web.AppRunner | None = None
    port: int = 0

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/session/{thread}/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        self.port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        thread, tail = request.match_info["thread"], request.match_info["tail"]
        self.seen.append(dict(request.headers))
        self.paths.append(request.raw_path)
        if request.headers.get("Upgrade", "").lower() == "websocket":
            ws = web.WebSocketResponse(protocols=("vite-hmr",))
            await ws.prepare(request)
            await ws.send_str(json.dumps({"type": "connected", "env": self.environment}))
            async for message in ws:
                if message.type is aiohttp.WSMsgType.TEXT:
                    await ws.send_str(f"{self.environment}/{thread}: {message.data}")
                elif message.type is aiohttp.WSMsgType.BINARY:
                    await ws.send_bytes(message.data[::-1])
            return ws
        if request.headers.get("If-None-Match") == '"v1"':
            return web.Response(status=304, headers={"ETag": '"v1"'})
        if tail == "assets/big.bin":
            response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
            await response.prepare(request)
            for start in range(0, len(ASSET), 65536):
                await response.write(ASSET[start:start + 65536])
            await response.write_eof()
            return response
        if tail == "echo" and request.method == "POST":
            response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
            await response.prepare(request)
            async for chunk in request.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response
        return web.Response(
            content_type="text/html",
            text=f"<html><body><h1>{self.environment} session {thread}</h1></body></html>")


def environment(name: str, sessions: list[str], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": KIND,
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"clientId": name.split("-")[0], "projectId": "website",
                     "userId": name.split("-")[-1],
                     "repository": {"url": "https://example.com/site.git"},
                     "sessions": sessions, **spec}}


def endpoint_slice(env_name: str, port: int | None, ready: bool = True) -> dict[str, Any]:
    """What the EndpointSlice controller writes for an editor Service (labels copied)."""
    service = child_name(env_name, "editor")
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": f"{service}-x7k2p", "namespace": NAMESPACE, "labels": {
            "kubernetes.io/service-name": service,
            "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
            "app.kubernetes.io/name": "webordinary-editor",
            "app.kubernetes.io/component": "editor"}},
        "addressType": "IPv4",
        "endpoints": [] if port is None else [
            {"addresses": ["127.0.0.1"], "conditions": {"ready": ready}}],
        "ports": [{"name": "preview", "protocol": "TCP", "port": port or 4321},
                  {"name": "metrics", "protocol": "TCP", "port": 9090}],
    }


NAMESPACE_OBJECT = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}


def ee_path(name: str = "") -> str:
    return f"/apis/{API_VERSION}/namespaces/{NAMESPACE}/{PLURAL}" + (f"/{name}" if name else "")


SLICES = f"/apis/discovery.k8s.io/v1/namespaces/{NAMESPACE}/endpointslices"


def make_keys(folder: Path) -> LinkKeys:
    folder.mkdir(parents=True, exist_ok=True)
    current = secrets.token_hex(32)
    (folder / "current").write_text(current + "\n")
    return keys_from_mapping({"current": current})


def token(keys: LinkKeys, thread: str, ttl: int = 3600) -> str:
    return sign(keys, thread, int(time.time()) + ttl)


@dataclass
class Gateway:
    """One gateway replica: `python -m webordinary.gateway` with production settings."""

    api_url: str
    keys_dir: Path
    log: Path
    port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {**os.environ,
               "WEBORDINARY_GATEWAY_KUBE_API_URL": self.api_url,
               "WEBORDINARY_GATEWAY_HOST": "127.0.0.1",
               "WEBORDINARY_GATEWAY_PORT": str(self.port),
               "WEBORDINARY_GATEWAY_METRICS_HOST": "127.0.0.1",
               "WEBORDINARY_GATEWAY_METRICS_PORT": str(self.metrics_port),
               "WEBORDINARY_GATEWAY_LINK_KEYS_DIR": str(self.keys_dir)}
        sink = self.log.open("ab")
        self.process = subprocess.Popen([sys.executable, "-m", "webordinary.gateway"], env=env,
                                        stdout=sink, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    async def ready(self, within: float = 60.0) -> None:
        deadline = time.monotonic() + within
        async with aiohttp.ClientSession() as client:
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise AssertionError(f"gateway exited: {self.log.read_text()[-3000:]}")
                try:
                    async with client.get(f"http://127.0.0.1:{self.metrics_port}/readyz") as r:
                        if r.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError(f"gateway not ready: {self.log.read_text()[-3000:]}")

    async def metric(self, name: str, labels: str = "") -> float:
        async with aiohttp.ClientSession() as client, client.get(
                f"http://127.0.0.1:{self.metrics_port}/metrics") as r:
            text = await r.text()
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name) and (not labels or labels in line):
                head, _, value = line.rpartition(" ")
                if head.split("{")[0] == name:
                    total += float(value)
        return total


async def until[T](check: Any, within: float = 10.0, what: str = "") -> Any:
    """Poll an async check until it returns something truthy."""
    deadline = time.monotonic() + within
    last = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}: last {last!r}")
