"""Live previews over real HTTP against real `astro dev` servers on the fixture site.

One workspace (git worktrees thread-a .. thread-d, thread-broken) and one Previews (cap 2) are
shared by the module, so dev servers are started only where a test needs a new one.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from yarl import URL

from tests.plugins.astro_site import git_status, make_astro_workspace
from webordinary.editor.previews import Previews, PreviewStartError

pytestmark = pytest.mark.asyncio(loop_scope="module")

THREADS = ("a", "b", "c", "d", "broken")


@pytest.fixture(scope="module")
def sessions_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sessions = make_astro_workspace(tmp_path_factory.mktemp("workspace"), THREADS)
    broken = sessions / "thread-broken" / "astro.config.mjs"
    broken.write_text("throw new Error('customer config is broken');\n", encoding="utf-8")
    return sessions


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def previews(sessions_dir: Path) -> AsyncIterator[Previews]:
    service = Previews(
        sessions_dir, port=0, metrics_port=0, host="127.0.0.1", max_active=2, stop_grace=2.0
    )
    await service.start()
    for thread in ("a", "b", "c"):
        service.register(thread, sessions_dir / f"thread-{thread}")
    yield service
    await service.close()


@pytest_asyncio.fixture(loop_scope="module")
async def http(previews: Previews) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(f"http://127.0.0.1:{previews.port}") as client:
        yield client


async def get_text(http: aiohttp.ClientSession, path: str) -> tuple[int, str]:
    async with http.get(path, allow_redirects=False) as resp:
        return resp.status, await resp.text()


async def wait_for_page(
    http: aiohttp.ClientSession, path: str, needle: str, within: float = 30.0
) -> float:
    """Poll until `path` answers 200 with `needle`; return the seconds it took."""
    began = time.monotonic()
    while True:
        status, body = await get_text(http, path)
        if status == 200 and needle in body:
            return time.monotonic() - began
        assert time.monotonic() - began < within, f"{path}: last answer {status}: {body[:400]}"
        await asyncio.sleep(0.1)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def metric(previews: Previews, name: str) -> float:
    async with (
        aiohttp.ClientSession() as client,
        client.get(f"http://127.0.0.1:{previews.metrics_port}/metrics") as resp,
    ):
        text = await resp.text()
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def test_page_and_every_asset_are_served_under_the_prefix(
    previews: Previews, http: aiohttp.ClientSession, sessions_dir: Path
) -> None:
    await previews.activate("a")
    assert previews.is_running("a")
    status, html = await get_text(http, "/session/a/")
    assert status == 200
    assert "Welcome to Amelia&#39;s Stamps" in html or "Welcome to Amelia's Stamps" in html
    status, about = await get_text(http, "/session/a/about/")
    assert status == 200
    urls = re.findall(r'(?:src|href)="(/[^"]*)"', html + about)
    assert any("/@vite/client" in u for u in urls)
    assert any("/_image?" in u for u in urls)
    for url in urls:
        assert url.startswith("/session/a/"), url
        async with http.get(URL(url.replace("&#38;", "&"), encoded=True)) as resp:
            assert resp.status == 200, url
            await resp.read()
    status, client = await get_text(http, "/session/a/@vite/client")
    assert status == 200
    assert 'const base = "/session/a/"' in client
    # Generated configs, logs and caches stay outside: the worktree has nothing untracked.
    assert git_status(sessions_dir / "thread-a") == ""


async def test_an_edited_file_is_served_by_the_next_request(
    previews: Previews, http: aiohttp.ClientSession, sessions_dir: Path
) -> None:
    await previews.activate("a")
    edit(sessions_dir / "thread-a/src/pages/index.astro", "Welcome to", "Spring sale at")
    took = await wait_for_page(http, "/session/a/", "Spring sale at", within=5.0)
    assert took < 5.0


async def test_two_sessions_show_their_own_content(
    previews: Previews, http: aiohttp.ClientSession, sessions_dir: Path
) -> None:
    edit(sessions_dir / "thread-b/src/pages/index.astro", "Welcome to", "Branch B of")
    await previews.activate("b")
    assert sorted(previews.active_sessions()) == ["a", "b"]
    assert previews.server_port("a") != previews.server_port("b")
    _, page_b = await get_text(http, "/session/b/")
    _, page_a = await get_text(http, "/session/a/")
    assert "Branch B of" in page_b
    assert "Spring sale at" not in page_b
    assert "Spring sale at" in page_a
    assert "Branch B of" not in page_a


async def test_hmr_websocket_goes_through_the_router(
    previews: Previews, http: aiohttp.ClientSession, sessions_dir: Path
) -> None:
    await previews.activate("a")
    _, client = await get_text(http, "/session/a/@vite/client")
    token = re.search(r'const wsToken = "([^"]+)"', client)
    assert token, "the vite client carries its websocket token"
    origin = f"http://127.0.0.1:{previews.port}"
    async with http.ws_connect(
        f"/session/a/?token={token.group(1)}", protocols=("vite-hmr",), headers={"Origin": origin}
    ) as ws:
        assert ws.protocol == "vite-hmr"
        hello = await asyncio.wait_for(ws.receive_str(), 10)
        assert json.loads(hello)["type"] == "connected"
        edit(sessions_dir / "thread-a/src/styles/site.css", "--ink: #2b2d42;", "--ink: #111;")
        kinds: set[str] = set()
        async with asyncio.timeout(10):
            while not kinds & {"update", "full-reload"}:
                kinds.add(json.loads(await ws.receive_str())["type"])
    async with http.ws_connect("/session/a/", protocols=("vite-ping",)) as ping:
        assert ping.protocol == "vite-ping"


async def test_hmr_error_overlay_shows_no_absolute_path(
    previews: Previews, http: aiohttp.ClientSession, sessions_dir: Path
) -> None:
    """A broken page: the error Vite sends the overlay over the HMR websocket names the file
    relative to the project, never where the workspace lives on the node."""
    await previews.activate("a")
    _, client = await get_text(http, "/session/a/@vite/client")
    token = re.search(r'const wsToken = "([^"]+)"', client)
    assert token
    origin = f"http://127.0.0.1:{previews.port}"
    page = sessions_dir / "thread-a/src/pages/oops.astro"
    async with http.ws_connect(
        f"/session/a/?token={token.group(1)}", protocols=("vite-hmr",), headers={"Origin": origin}
    ) as ws:
        assert json.loads(await asyncio.wait_for(ws.receive_str(), 10))["type"] == "connected"
        page.write_text("---\nconst broken = ;\n---\n<p>{broken}</p>\n", encoding="utf-8")
        try:
            began = time.monotonic()
            status, body = await get_text(http, "/session/a/oops/")
            while status == 404 and time.monotonic() - began < 15:  # the watcher adds the route
                await asyncio.sleep(0.2)
                status, body = await get_text(http, "/session/a/oops/")
            assert status == 500, body[:300]
            error: dict[str, object] = {}
            async with asyncio.timeout(20):
                while not error:
                    message = json.loads(await ws.receive_str())
                    if message["type"] == "error":
                        error = message["err"]
        finally:
            page.unlink()
    text = json.dumps(error)
    assert str(sessions_dir) not in text, text
    assert str(sessions_dir.parent) not in text, text
    assert error.get("id") == "src/pages/oops.astro", error
    loc = error.get("loc")
    assert isinstance(loc, dict)
    assert loc.get("file") == "src/pages/oops.astro", error
    assert "oops.astro" in str(error.get("stack", "")) + str(error.get("message", ""))
    assert str(sessions_dir) not in body


async def test_cap_of_two_stops_the_least_recently_used(
    previews: Previews, http: aiohttp.ClientSession
) -> None:
    await previews.activate("a")
    await previews.activate("b")
    pid_a = previews.server_pid("a")
    assert pid_a is not None
    assert (await get_text(http, "/session/b/"))[0] == 200  # b is now the most recent
    evictions = await metric(previews, "webordinary_preview_evictions_total")
    await previews.activate("c")
    assert previews.active_sessions() == ["b", "c"]
    assert not previews.is_running("a")
    assert not alive(pid_a)
    assert await metric(previews, "webordinary_preview_evictions_total") == evictions + 1
    assert await metric(previews, "webordinary_preview_active_servers") == 2
    # The HMR client of an evicted tab pings for its server: that must not wake it.
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect("/session/a/", protocols=("vite-ping",))
    assert refused.value.status == 503
    await asyncio.sleep(0.2)
    assert previews.active_sessions() == ["b", "c"]
    # A sleeping known session: the page says it is starting, and the request wakes it.
    status, page = await get_text(http, "/session/a/")
    assert status == 503
    assert "Starting your preview" in page
    assert 'http-equiv="refresh"' in page
    await wait_for_page(http, "/session/a/", "Spring sale at")
    assert previews.active_sessions() == ["c", "a"]


async def test_a_crashed_dev_server_is_restarted_with_backoff(
    previews: Previews, http: aiohttp.ClientSession
) -> None:
    await previews.activate("a")
    pid = previews.server_pid("a")
    assert pid is not None
    crashes = await metric(previews, "webordinary_preview_crashes_total")
    os.killpg(pid, signal.SIGKILL)
    for _ in range(100):
        if not previews.is_running("a"):
            break
        await asyncio.sleep(0.05)
    assert not previews.is_running("a")
    assert await metric(previews, "webordinary_preview_crashes_total") == crashes + 1
    status, page = await get_text(http, "/session/a/")
    assert status == 503
    assert "Restarting your preview" in page
    # Started again after the backoff, by the supervisor itself (no request needed).
    for _ in range(400):
        if previews.is_running("a"):
            break
        await asyncio.sleep(0.05)
    assert previews.server_pid("a") not in (None, pid)
    await wait_for_page(http, "/session/a/", "Spring sale at")


async def test_redirects_and_not_found(previews: Previews, http: aiohttp.ClientSession) -> None:
    async with http.get("/session/a?x=1", allow_redirects=False) as resp:
        assert resp.status == 308
        assert resp.headers["Location"] == "/session/a/?x=1"
    status, page = await get_text(http, "/session/nobody/")
    assert status == 404
    assert "No preview is known for this session" in page
    for raw in ("/session/a/%2e%2e/b/", "/session/A/", "/session/a/..%2f..%2fetc/passwd", "/"):
        async with http.get(URL(raw, encoded=True), allow_redirects=False) as resp:
            assert resp.status == 404, raw
            assert "There is no preview here" in await resp.text()
    assert previews.is_running("a") or "a" not in previews.active_sessions()


async def test_health_ready_and_metrics(previews: Previews) -> None:
    base = f"http://127.0.0.1:{previews.metrics_port}"
    async with aiohttp.ClientSession(base) as client:
        async with client.get("/healthz") as resp:
            assert resp.status == 200
        previews.set_ready(False)
        async with client.get("/readyz") as resp:
            assert resp.status == 503
        previews.set_ready(True)
        async with client.get("/readyz") as resp:
            assert resp.status == 200
    assert await metric(previews, 'webordinary_preview_starts_total{outcome="ok"}') >= 3
    assert await metric(previews, 'webordinary_preview_requests_total{outcome="proxied"}') > 0
    assert await metric(previews, "webordinary_preview_start_seconds_count") >= 3
    assert await metric(previews, "webordinary_preview_warm_starts_total") >= 1
    assert await metric(previews, "webordinary_preview_active_servers") == len(
        previews.active_sessions()
    )


async def test_a_site_that_cannot_start_gets_a_page_with_its_error(sessions_dir: Path) -> None:
    service = Previews(
        sessions_dir, port=0, metrics_port=0, host="127.0.0.1", max_active=1,
        retry_after_failure=30.0, standby=False,
    )
    await service.start()
    try:
        service.register("broken", sessions_dir / "thread-broken")
        with pytest.raises(PreviewStartError) as failure:
            await service.activate("broken")
        assert "customer config is broken" in failure.value.log_tail
        assert service.active_sessions() == []
        async with aiohttp.ClientSession(f"http://127.0.0.1:{service.port}") as client:
            status, page = await get_text(client, "/session/broken/")
        assert status == 502
        assert "could not start" in page
        assert "customer config is broken" in page
    finally:
        await service.close()


async def test_allowed_hosts_and_close_stops_everything(sessions_dir: Path) -> None:
    service = Previews(
        sessions_dir, port=0, metrics_port=0, host="127.0.0.1", max_active=1,
        allowed_hosts=["preview.example"],
    )
    await service.start()
    closed = False
    try:
        service.register("d", sessions_dir / "thread-d")
        async with aiohttp.ClientSession(f"http://127.0.0.1:{service.port}") as client:
            async with client.get("/session/d/", headers={"Host": "evil.example"}) as resp:
                assert resp.status == 403
            assert not service.active_sessions()
            await service.activate("d")
            async with client.get("/session/d/", headers={"Host": "preview.example"}) as resp:
                assert resp.status == 200
                assert "Welcome to" in await resp.text()
        pid = service.server_pid("d")
        assert pid is not None
        for _ in range(100):
            spare = service.standby_pid()
            if spare is not None:
                break
            await asyncio.sleep(0.1)
        assert spare is not None, "a new spare follows every start"
        port = service.port
        spare_logs = set((sessions_dir / ".previews").glob("standby-*.log"))
        await service.close()
        closed = True
        assert not alive(pid)
        assert not alive(spare)
        # Its spare's log is gone (the module's own Previews still has one).
        assert len(set((sessions_dir / ".previews").glob("standby-*.log"))) == len(spare_logs) - 1
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", port)
    finally:
        if not closed:
            await service.close()
