"""A strict Kubernetes API emulator over real HTTP, for tests and `./dev up`.

No real API server runs here, so this serves the API contract the operator (kopf), Hermes and
kubectl rely on: resourceVersions and conflicts, generations, status subresources, finalizers,
ownerReference garbage collection, selectors, resumable watches, validation (built-ins against
the official schemas, custom resources against their CRD schema), discovery.
What it enforces, and what not, is listed in `devkit/webordinary/devkit/kube/README.md`.

    api = start_kube_api([Path("crds/editenvironments.webordinary.dev.yaml")])
    ... talk to api.url with kopf / kubectl --server / kubernetes clients ...
    api.stop()
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import threading
import time
from collections.abc import Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp.web
import yaml

from webordinary.devkit.kube.data import clone
from webordinary.devkit.kube.errors import ApiError
from webordinary.devkit.kube.server import StrictKubernetesEmulator
from webordinary.devkit.kube.store import HISTORY_SECONDS, Obj, Store

log = logging.getLogger(__name__)

T = TypeVar("T")
VERBS = ("GET", "LIST", "POST", "PUT", "PATCH", "DELETE", "WATCH")


def crd_documents(paths: Iterable[Path]) -> list[Obj]:
    """Every CustomResourceDefinition in the given files or folders (missing ones skipped)."""
    docs: list[Obj] = []
    for path in paths:
        if path.is_dir():
            files = sorted([*path.glob("*.yaml"), *path.glob("*.yml")])
        elif path.is_file():
            files = [path]
        else:
            continue
        for file in files:
            for doc in yaml.safe_load_all(file.read_text()):
                if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                    docs.append(doc)
    return docs


@dataclass
class KubeAPI:
    """A running emulator (own thread and event loop); `url` is where clients connect."""

    url: str
    _loop: asyncio.AbstractEventLoop = field(repr=False)
    _thread: threading.Thread = field(repr=False)
    _stopped: asyncio.Event = field(repr=False)
    _emulator: StrictKubernetesEmulator = field(repr=False)

    @property
    def store(self) -> Store:
        """The state (touch only from the emulator's loop, e.g. through `call`)."""
        return self._emulator.store

    def add_user(self, token: str, username: str) -> None:
        """Requests with `Authorization: Bearer <token>` come from `username` (what admission
        policies see, e.g. "system:serviceaccount:webordinary:webordinary-hermes")."""
        self._loop.call_soon_threadsafe(self._emulator.users.__setitem__, token, username)

    def stop(self) -> None:
        """Close watch streams, stop the server and its thread."""
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stopped.set)
            self._thread.join(timeout=10)

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the emulator's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    def request_counts(self) -> dict[str, int]:
        """Requests served by verb: GET (one object), LIST, POST, PUT, PATCH, DELETE, WATCH."""
        with self.store.counts_lock:
            counts = dict(self.store.counts)
        return {verb: counts.get(verb, 0) for verb in VERBS}

    def write_counts(self) -> dict[str, int]:
        """Writes (POST/PUT/PATCH/DELETE) per resource, e.g. {"deployments": 3,
        "editenvironments/status": 5}."""
        with self.store.counts_lock:
            return dict(self.store.writes)

    def read_counts(self) -> dict[str, int]:
        """Reads (GET of one object, LIST) per verb and resource, e.g. {"LIST pods": 2}."""
        with self.store.counts_lock:
            return dict(self.store.reads)

    def accept_tokens(self, tokens: Iterable[str] | None) -> None:
        """Authenticate: only these bearer tokens pass (401 otherwise), as a real server with
        a static token file; None: every request passes (the default)."""
        accepted = None if tokens is None else frozenset(tokens)

        async def apply() -> None:
            self._emulator.tokens = accepted

        self.call(apply())

    def gone_count(self) -> int:
        """Watches refused with 410 Gone because their resourceVersion was too old."""
        return self.store.gone_count

    def reset_counts(self) -> None:
        with self.store.counts_lock:
            self.store.counts.clear()
            self.store.writes.clear()
            self.store.reads.clear()

    def timings(self) -> dict[str, float]:
        """Mean server-side handling time in milliseconds per verb (watch excluded)."""
        emulator = self._emulator

        async def snapshot() -> dict[str, float]:
            return {
                verb: 1000 * emulator.timings[verb] / count
                for verb, count in emulator.timing_counts.items() if count
            }

        return self.call(snapshot())

    def trace(self, on: bool = True) -> list[tuple[float, float, str, str]]:
        """Start (or stop) recording every request but watches; returns what was recorded
        since the last call: (wall time it reached the handler, wall time it was answered,
        verb, path)."""
        emulator = self._emulator

        async def swap() -> list[tuple[float, float, str, str]]:
            recorded, emulator.trace = emulator.trace or [], [] if on else None
            return recorded

        return self.call(swap())

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The emulator's event loop (e.g. for a lag probe; schedule on it thread-safely)."""
        return self._loop

    @property
    def thread_id(self) -> int | None:
        return self._thread.ident

    def cpu_seconds(self) -> float:
        """CPU time the emulator's thread has used so far (robust on a busy machine)."""

        async def measure() -> float:
            return time.thread_time()

        return self.call(measure())

    def register_crds(self, paths: Sequence[Path]) -> None:
        """Create the CRDs found in these files/folders (as `kubectl apply` would)."""
        docs = crd_documents(paths)

        async def create() -> None:
            _create_crds(self.store, docs)

        self.call(create())

    def create_namespaces(self, *names: str) -> None:
        """Create namespaces that do not exist yet (as `kubectl create namespace` would):
        objects in a missing namespace are refused with 404, as on a real server."""
        store = self.store

        async def create() -> None:
            namespaces = store.find("", "v1", "namespaces")
            assert namespaces is not None
            for name in names:
                if ("", name) not in store.objects[namespaces.storage_key]:
                    store.create(namespaces, None, {"apiVersion": "v1", "kind": "Namespace",
                                                    "metadata": {"name": name}})

        self.call(create())

    def get(self, api_version: str, plural: str, namespace: str | None, name: str
            ) -> Obj | None:
        """A snapshot of one object, or None (for assertions in tests)."""
        store = self.store

        async def read() -> Obj | None:
            group, _, version = api_version.rpartition("/")
            resource = store.find(group, version, plural)
            if resource is None:
                return None
            obj = store.objects[resource.storage_key].get((namespace or "", name))
            return None if obj is None else clone(obj)

        return self.call(read())


def _create_crds(store: Store, docs: list[Obj]) -> None:
    crds = store.find("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    assert crds is not None
    for doc in docs:
        try:
            store.create(crds, None, doc)
        except ApiError as exc:
            if exc.code != 409:
                raise


async def _serve(
    emulator: StrictKubernetesEmulator, host: str, port: int, stopped: asyncio.Event,
    ready: asyncio.Future[str],
) -> None:
    async with emulator:
        # no access log: a log record per request costs more than serving many of them
        server = aiohttp.web.Server(emulator, handler_cancellation=True, access_log=None)
        runner = aiohttp.web.ServerRunner(server, handle_signals=False, shutdown_timeout=2.0)
        await runner.setup()
        try:
            site = aiohttp.web.TCPSite(runner, host, port, reuse_address=True)
            await site.start()
            server_sockets = getattr(site._server, "sockets", None) or []
            bound = server_sockets[0].getsockname()[1] if server_sockets else port
            emulator.address = f"{host}:{bound}"
            ready.set_result(f"http://{host}:{bound}")
            await stopped.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            raise
        finally:
            emulator.store.close_watchers()
            await asyncio.sleep(0)
            await runner.cleanup()


def start_kube_api(
    crd_paths: Sequence[Path] = (), host: str = "127.0.0.1", port: int = 0,
    watch_history_seconds: float = HISTORY_SECONDS,
) -> KubeAPI:
    """Start the emulator in its own thread + event loop; register built-ins and each CRD.

    `watch_history_seconds`: how long watch events can be resumed from (a real server
    compacts after 5 minutes); a watch from an older resourceVersion gets 410 Gone."""
    docs = crd_documents(crd_paths)
    loop = asyncio.new_event_loop()
    started: dict[str, Any] = {}
    booted = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        store = Store(history_seconds=watch_history_seconds)
        store.loop = loop
        emulator = StrictKubernetesEmulator(store=store)
        stopped = asyncio.Event()
        ready: asyncio.Future[str] = loop.create_future()
        started.update(emulator=emulator, stopped=stopped, ready=ready)
        try:
            _create_crds(store, docs)
        except Exception as exc:
            ready.set_exception(exc)
            booted.set()
            return
        task = loop.create_task(_serve(emulator, host, port, stopped, ready))
        ready.add_done_callback(lambda _: booted.set())
        try:
            loop.run_until_complete(task)
        except Exception:
            log.exception("kube emulator stopped with an error")
        finally:
            booted.set()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    thread = threading.Thread(target=run, name="kube-api-emulator", daemon=True)
    thread.start()
    booted.wait(timeout=30)
    ready = started.get("ready")
    if ready is None or not ready.done():
        raise RuntimeError("the Kubernetes API emulator did not start")
    url = ready.result()
    return KubeAPI(url=url, _loop=loop, _thread=thread, _stopped=started["stopped"],
                   _emulator=started["emulator"])


def main() -> None:
    """`python -m webordinary.devkit.kubeapi --port 8001 --crds crds/`"""
    parser = argparse.ArgumentParser(description="Strict Kubernetes API emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--watch-history-seconds", type=float, default=HISTORY_SECONDS,
                        help="how long watches can resume from a resourceVersion (410 after)")
    parser.add_argument("--crds", type=Path, action="append", default=[],
                        help="a CRD yaml file or a folder of them (repeatable)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    api = start_kube_api(args.crds, host=args.host, port=args.port,
                         watch_history_seconds=args.watch_history_seconds)
    print(f"Kubernetes API emulator at {api.url}", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: done.set())
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    done.wait()
    api.stop()


if __name__ == "__main__":
    main()
