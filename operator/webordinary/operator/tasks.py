"""Long-running background tasks of the operator's parts (wake polls, peering, child watches)."""

from __future__ import annotations

import asyncio
import contextlib


async def ended(task: asyncio.Task[None] | None) -> None:
    """Cancel `task` (if any) and wait until it has finished: a part's `stop()` returns only
    when nothing of it runs any more."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
