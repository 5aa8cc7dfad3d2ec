"""The gateway as it runs in production, over real HTTP: the API emulator feeds its routing
table, editor stand-ins sit behind it, browsers and scripts talk to it. (Wake on visit runs
the whole chain, operator and kubelet included, in test_wake_chain.py.)"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.gateway.harness import (
    NAMESPACE_OBJECT,
    SLICES,
    Editor,
    Gateway,
    asset_bytes,
    ee_path,
    endpoint_slice,
    environment,
    make_keys,
    token,
    until,
)
from tests.plugins.kube import KubeHTTP
from webordinary.contracts.environment import ANNOTATION_ACTIVITY
from webordinary.contracts.links import COOKIE_NAME, LinkKeys
from webordinary.devkit.kubeapi import KubeAPI

THREADS = {
    "acme-website-ann": ["a1a1a1a1a1a1a1a1", "a2a2a2a2a2a2a2a2", "a3a3a3a3a3a3a3a3"],
    "bolt-shop-bob": ["b1b1b1b1b1b1b1b1", "b2b2b2b2b2b2b2b2", "b3b3b3b3b3b3b3b3"],
}
BROWSER = {"Accept": "text/html,application/xhtml+xml"}


@dataclass
class World:
    api: KubeAPI
    http: KubeHTTP
    keys: LinkKeys
    editors: dict[str, Editor]
    gateway: Gateway
    client: aiohttp.ClientSession
    tmp: Path

    async def login(self, thread: str) -> str:
        """Follow a signed link once; return the cookie the gateway set."""
        url = f"{self.gateway.url}/session/{thread}/?access={token(self.keys, thread)}"
        async with self.client.get(url, allow_redirects=False) as response:
            assert response.status == 303, await response.text()
            cookie = SimpleCookie()
            for header in response.headers.getall("Set-Cookie"):
                cookie.load(header)
            return cookie[COOKIE_NAME].value

    def cookie(self, value: str) -> dict[str, str]:
        return {"Cookie": f"{COOKIE_NAME}={value}"}


@pytest.fixture
async def world(kube_api: KubeAPI, tmp_path: Path) -> AsyncIterator[World]:
    http = KubeHTTP(kube_api.url)
    keys = make_keys(tmp_path / "keys")
    editors = {name: Editor(name) for name in THREADS}
    assert http.post("/api/v1/namespaces", NAMESPACE_OBJECT).status_code == 201
    for name, editor in editors.items():
        await editor.start()
        assert http.post(ee_path(), environment(name, THREADS[name])).status_code == 201
        assert http.post(SLICES, endpoint_slice(name, editor.port)).status_code == 201
    gateway = Gateway(kube_api.url, tmp_path / "keys", tmp_path / "gateway.log")
    gateway.start()
    client = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
    try:
        await gateway.ready()
        yield World(kube_api, http, keys, editors, gateway, client, tmp_path)
    finally:
        await client.close()
        gateway.stop()
        for editor in editors.values():
            await editor.stop()


async def test_two_environments_serve_pages_assets_uploads_and_hmr(world: World) -> None:
    for name, threads in THREADS.items():
        for thread in threads:
            cookie = world.cookie(await world.login(thread))
            base = f"{world.gateway.url}/session/{thread}/"
            async with world.client.get(base, headers={**cookie, **BROWSER}) as page:
                assert page.status == 200
                assert f"{name} session {thread}" in await page.text()
                # The editor's own share of the time, for devtools and the bench.
                timing = page.headers["Server-Timing"]
                assert timing.startswith("upstream;dur=")
                assert float(timing.split("=")[1]) > 0
            async with world.client.get(base + "assets/big.bin", headers=cookie) as asset:
                assert asset.status == 200
                assert await asset.read() == asset_bytes()
            async with world.client.get(base + "assets/big.bin",
                                        headers={**cookie, "If-None-Match": '"v1"'}) as cached:
                assert cached.status == 304
                assert await cached.read() == b""
            upload = asset_bytes()[: 1024 * 1024]
            async with world.client.post(base + "echo", data=upload, headers=cookie) as echo:
                assert await echo.read() == upload
            async with world.client.ws_connect(base + "?token=vite", headers=cookie,
                                               protocols=("vite-hmr",)) as ws:
                assert ws.protocol == "vite-hmr"
                hello = json.loads((await ws.receive(timeout=5)).data)
                assert hello == {"type": "connected", "env": name}
                await ws.send_str('{"type":"ping"}')
                assert (await ws.receive(timeout=5)).data == f'{name}/{thread}: {{"type":"ping"}}'
                await ws.send_bytes(b"\x01\x02\x03")
                assert (await ws.receive(timeout=5)).data == b"\x03\x02\x01"
                assert await world.gateway.metric("webordinary_gateway_websockets_open") == 1
    # What reached the editors: the right tenant only, no link token, forwarded headers.
    for name, editor in world.editors.items():
        assert all(path.split("/")[2] in THREADS[name] for path in editor.paths)
        assert all("access=" not in path for path in editor.paths)
        for headers in editor.seen:
            assert COOKIE_NAME not in headers.get("Cookie", "")
            assert headers["X-Forwarded-For"] == "127.0.0.1"
            assert headers["X-Forwarded-Proto"] == "http"
            assert headers["X-Forwarded-Host"] == f"127.0.0.1:{world.gateway.port}"
    # Viewing counts as activity: one stamp per environment, however many requests.
    for name in THREADS:
        ee = world.http.get(ee_path(name)).json()
        assert ANNOTATION_ACTIVITY in ee["metadata"]["annotations"]
    assert world.api.write_counts().get("editenvironments", 0) == len(THREADS) * 2, (
        "two creates and one activity stamp per environment")
    assert await world.gateway.metric("webordinary_gateway_requests_total",
                                      'outcome="proxied"') >= 24
    # Metrics: requests by status, upstream latency, open websockets, the table's size and age.
    assert await world.gateway.metric("webordinary_gateway_requests_total", 'code="200"') >= 18
    assert await world.gateway.metric("webordinary_gateway_requests_total", 'code="304"') == 6
    assert await world.gateway.metric("webordinary_gateway_upstream_seconds_count") >= 24
    assert await world.gateway.metric("webordinary_gateway_upstream_seconds_bucket",
                                      'le="+Inf"') >= 24
    await until(lambda: _is_zero(world.gateway.metric("webordinary_gateway_websockets_open")),
                what="websockets closed")
    assert await world.gateway.metric("webordinary_gateway_routes") == 6
    assert await world.gateway.metric("webordinary_gateway_environments") == 2
    assert await world.gateway.metric("webordinary_gateway_backends") == 2
    assert 0 <= await world.gateway.metric("webordinary_gateway_routes_age_seconds") < 60


async def _is_zero(value: Any) -> bool:
    return bool(await value == 0)


async def test_signed_links_cookies_and_every_refusal(world: World) -> None:
    thread, other = THREADS["acme-website-ann"][0], THREADS["bolt-shop-bob"][0]
    base = f"{world.gateway.url}/session/{thread}/"
    url = f"{base}about/?page=2&access={token(world.keys, thread)}"
    async with world.client.get(url, allow_redirects=False) as response:
        assert response.status == 303
        assert response.headers["Location"] == f"/session/{thread}/about/?page=2"
        (header,) = response.headers.getall("Set-Cookie")
    attributes = {part.strip().split("=")[0].lower(): part.strip() for part in header.split(";")}
    assert "httponly" in attributes
    assert "secure" in attributes
    assert attributes["samesite"].lower() == "samesite=lax"
    assert attributes["path"] == f"Path=/session/{thread}/"
    assert 3500 < int(attributes["max-age"].split("=")[1]) <= 3600
    value = SimpleCookie(header)[COOKIE_NAME].value
    # The cookie is reused for pages and the HMR websocket.
    async with world.client.get(base + "about/?page=2", headers=world.cookie(value)) as ok:
        assert ok.status == 200
    async with world.client.ws_connect(base, headers=world.cookie(value),
                                       protocols=("vite-hmr",)) as ws:
        assert json.loads((await ws.receive(timeout=5)).data)["type"] == "connected"

    expired = token(world.keys, thread, ttl=-10)
    good = token(world.keys, thread)
    tampered = good[:-2] + ("AA" if not good.endswith("AA") else "BB")
    refused = {
        "no token": (base, {}),
        "expired link": (f"{base}?access={expired}", {}),
        "tampered link": (f"{base}?access={tampered}", {}),
        "other thread's link": (f"{base}?access={token(world.keys, other)}", {}),
        "other thread's cookie": (base, world.cookie(await world.login(other))),
        "expired cookie": (base, world.cookie(expired)),
        "forged key": (f"{base}?access=v1.00000000.9999999999.AAAA", {}),
    }
    for why, (target, headers) in refused.items():
        async with world.client.get(target, headers={**headers, **BROWSER},
                                    allow_redirects=False) as response:
            assert response.status == 403, why
            assert "latest email" in await response.text(), why
            assert "Set-Cookie" not in response.headers, why
        with pytest.raises(aiohttp.WSServerHandshakeError) as refusal:
            await world.client.ws_connect(target, headers=headers)
        assert refusal.value.status == 403, why
    # An old link in a browser that already holds a valid cookie: back to the clean URL.
    async with world.client.get(f"{base}?access={expired}", headers=world.cookie(value),
                                allow_redirects=False) as response:
        assert response.status == 303
        assert "Set-Cookie" not in response.headers
    # A valid link for a session that does not exist (any more) says so, after the check.
    gone = "deadbeefdeadbeef"
    async with world.client.get(f"{world.gateway.url}/session/{gone}/",
                                headers={**world.cookie(token(world.keys, gone)), **BROWSER}
                                ) as response:
        assert response.status == 404
        assert "latest one" in await response.text()
    assert sum(len(e.paths) for e in world.editors.values()) == 2, "refusals never reach editors"


async def test_failed_suspended_and_unknown_get_clear_pages(world: World) -> None:
    cases = {"dead-site-dan": ("d1d1d1d1d1d1d1d1", {"phase": "Failed"}, {}, "not available"),
             "paused-site-pat": ("e1e1e1e1e1e1e1e1", {"phase": "Sleeping"}, {"suspend": True},
                                 "paused")}
    for name, (thread, status, spec, _) in cases.items():
        assert world.http.post(ee_path(), environment(name, [thread], **spec)).status_code == 201
        world.http.patch(ee_path(name) + "/status", {"status": status})
    await until(lambda: world.gateway.metric("webordinary_gateway_routes"), what="routes")
    for thread, _, _, words in cases.values():
        url = f"{world.gateway.url}/session/{thread}/"
        headers = {**world.cookie(token(world.keys, thread)), **BROWSER}

        async def page(url: str = url, headers: dict[str, str] = headers) -> str | None:
            async with world.client.get(url, headers=headers) as response:
                text = await response.text()
                return text if response.status == 503 and "Starting" not in text else None

        text = await until(page, what=words)
        assert words in text
        assert "Traceback" not in text
    async with world.client.get(f"{world.gateway.url}/elsewhere", headers=BROWSER) as response:
        assert response.status == 404
        assert "There is no preview here" in await response.text()
    async with world.client.get(f"{world.gateway.url}/session/{THREADS['bolt-shop-bob'][0]}",
                                allow_redirects=False) as response:
        assert response.status == 308


async def test_routing_follows_sessions_added_and_removed(world: World) -> None:
    name, new = "acme-website-ann", "a9a9a9a9a9a9a9a9"
    url = f"{world.gateway.url}/session/{new}/"
    cookie = world.cookie(token(world.keys, new))

    async def status() -> int:
        async with world.client.get(url, headers=cookie) as response:
            return response.status

    assert await status() == 404
    began = time.monotonic()
    world.http.patch(ee_path(name), {"spec": {"sessions": [*THREADS[name], new]}})
    await until(lambda: _is(status, 200), within=5, what="the new session served")
    added = time.monotonic() - began
    world.http.patch(ee_path(name), {"spec": {"sessions": THREADS[name]}})
    await until(lambda: _is(status, 404), within=5, what="the removed session gone")
    world.http.delete(ee_path("bolt-shop-bob"))
    gone = world.cookie(token(world.keys, THREADS["bolt-shop-bob"][1]))
    async with world.client.get(f"{world.gateway.url}/session/{THREADS['bolt-shop-bob'][1]}/",
                                headers=gone) as response:
        assert response.status in (404, 200)  # deletion is seen within the watch's latency
    print(f"route update seen after {added * 1000:.0f} ms")


async def _is(check: object, expected: int) -> bool:
    return bool(await check() == expected)  # type: ignore[operator]


async def test_restarting_one_replica_keeps_previews_served(world: World) -> None:
    second = Gateway(world.api.url, world.tmp / "keys", world.tmp / "gateway2.log")
    second.start()
    await second.ready()
    thread = THREADS["bolt-shop-bob"][2]
    cookie = world.cookie(token(world.keys, thread))
    try:
        world.gateway.stop()
        for _ in range(20):
            async with world.client.get(f"{second.url}/session/{thread}/",
                                        headers=cookie) as response:
                assert response.status == 200
        world.gateway.start()
        await world.gateway.ready()
        async with world.client.get(f"{world.gateway.url}/session/{thread}/",
                                    headers=cookie) as response:
            assert response.status == 200, "the restarted replica lists its routes again"
    finally:
        second.stop()


@pytest.mark.slow
async def test_five_thousand_environments_in_the_routing_table(world: World) -> None:
    """Listed at start and followed live: 5,000 environments x 3 sessions, one of them served."""
    semaphore = asyncio.Semaphore(16)

    async def create(i: int) -> None:
        body = environment(f"c{i}-site-u{i}", [f"{i:010x}{j:06x}" for j in range(3)])
        async with semaphore, world.client.post(world.api.url + ee_path(), json=body) as r:
            assert r.status == 201, await r.text()

    await asyncio.gather(*(create(i) for i in range(5000)))
    expected = 5000 * 3 + sum(len(t) for t in THREADS.values())

    async def routes() -> bool:
        return await world.gateway.metric("webordinary_gateway_routes") == expected

    await until(routes, within=60, what="every session routable (watch)")
    # A restarted replica lists them all (paged) before it says ready.
    world.gateway.stop()
    world.gateway.start()
    await world.gateway.ready(within=60)
    assert await world.gateway.metric("webordinary_gateway_routes") == expected
    assert await world.gateway.metric("webordinary_gateway_environments") == 5000 + len(THREADS)
    thread = f"{4321:010x}{2:06x}"
    editor = Editor("c4321-site-u4321")
    await editor.start()
    try:
        world.http.post(SLICES, endpoint_slice("c4321-site-u4321", editor.port))
        cookie = world.cookie(token(world.keys, thread))

        async def served() -> bool:
            async with world.client.get(f"{world.gateway.url}/session/{thread}/",
                                        headers=cookie) as response:
                return response.status == 200 and "c4321-site-u4321" in await response.text()

        await until(served, what="one of 5,000 served")
    finally:
        await editor.stop()
