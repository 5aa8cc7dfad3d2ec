"""An ingress controller stand-in for local runs: `/session/{threadId}/` to the right editor.

It reads the EditEnvironments (thread -> editor Service), the Service selector, and
asks the local kubelet which process serves it; the preview router's own forwarding code
carries plain HTTP and the HMR websocket.
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
from aiohttp import web

from webordinary.contracts.naming import child_name
from webordinary.devkit.kubelet import LocalKubelet, get_json
from webordinary.editor.previews.proxy import UpstreamUnavailable, forward_http, forward_websocket

log = logging.getLogger(__name__)


def match_backend(environments: list[dict[str, Any]], path: str) -> tuple[str, str] | None:
    """(namespace, editor service) of the environment whose sessions hold the path's thread."""
    if not path.startswith("/session/"):
        return None
    thread = path[len("/session/"):].partition("/")[0]
    for environment in environments:
        if thread in (environment.get("spec", {}).get("sessions") or []):
            meta = environment["metadata"]
            return meta["namespace"], child_name(meta["name"], "editor")
    return None


class LocalIngress:
    """aiohttp app that proxies session paths to local editor processes."""

    def __init__(self, api_url: str, kubelet: LocalKubelet) -> None:
        self.api_url = api_url.rstrip("/")
        self.kubelet = kubelet
        self.client: aiohttp.ClientSession | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        app.on_startup.append(self._open)
        app.on_cleanup.append(self._close)
        return app

    async def _open(self, _: web.Application) -> None:
        self.client = aiohttp.ClientSession(auto_decompress=False)

    async def _close(self, _: web.Application) -> None:
        if self.client is not None:
            await self.client.close()

    async def _get(self, path: str) -> dict[str, Any]:
        assert self.client is not None
        return await get_json(self.client, f"{self.api_url}{path}")

    async def handle(self, request: web.Request) -> web.StreamResponse:
        assert self.client is not None
        environments = (await self._get("/apis/webordinary.dev/v1alpha1/editenvironments"))
        backend = match_backend(environments["items"], request.path)
        if backend is None:
            return web.Response(status=404, text="no session has this URL\n")
        namespace, service = backend
        svc = await self._get(f"/api/v1/namespaces/{namespace}/services/{service}")
        port = self.kubelet.preview_port_for(namespace, svc["spec"].get("selector", {}))
        if port is None:
            return web.Response(status=503, text="the editor for this session is starting\n",
                                headers={"Retry-After": "2"})
        base = f"http://127.0.0.1:{port}"
        try:
            if request.headers.get("Upgrade", "").lower() == "websocket":
                return await forward_websocket(request, self.client, base)
            return await forward_http(request, self.client, base)
        except UpstreamUnavailable:
            return web.Response(status=502, text="the editor did not answer\n")
