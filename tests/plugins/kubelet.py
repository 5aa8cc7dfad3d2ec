"""The devkit kubelet on an event loop of its own, for tests that drive it from sync code."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator

from webordinary.devkit.kubelet import LocalKubelet


@contextlib.contextmanager
def kubelet_running(node: LocalKubelet, stop_within: float = 60.0) -> Iterator[LocalKubelet]:
    """Run `node` in a thread while the block runs; cancel it (its pods stop) on the way out."""
    loop = asyncio.new_event_loop()
    task: list[asyncio.Task[None]] = []

    async def main() -> None:
        task.append(asyncio.current_task())  # type: ignore[arg-type]
        await node.run()

    def run() -> None:
        with contextlib.suppress(asyncio.CancelledError):
            loop.run_until_complete(main())

    thread = threading.Thread(target=run, name="kubelet", daemon=True)
    thread.start()
    try:
        yield node
    finally:
        while not task and thread.is_alive():
            time.sleep(0.01)
        if task:
            loop.call_soon_threadsafe(task[0].cancel)
        thread.join(timeout=stop_within)
