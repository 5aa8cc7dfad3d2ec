"""How the editor pod's three processes (the editor, the preview supervisor, the credential
proxy) start and stop alike: settings from the environment or exit 2 with the reason, logs on
stderr, and a stop on SIGTERM (the kubelet) or SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Iterable

from pydantic import ValidationError

from webordinary.contracts.logformat import TEXT_FORMAT


def settings_or_exit[T](load: Callable[[], T], what: str) -> T:
    """`load()`, or exit 2 with pydantic's account of every bad variable (no traceback)."""
    try:
        return load()
    except ValidationError as exc:
        print(f"invalid {what}:\n{exc}", file=sys.stderr)
        sys.exit(2)


def log_to_stderr(level: str, quiet: Iterable[str] = ()) -> None:
    """Log at `level` (any case) to stderr; the `quiet` loggers only from WARNING."""
    logging.basicConfig(level=level.upper(), stream=sys.stderr, format=TEXT_FORMAT)
    for name in quiet:
        logging.getLogger(name).setLevel(logging.WARNING)


def on_stop(callback: Callable[[], object]) -> None:
    """Call `callback` in the running loop on SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):  # no signal handlers on this platform
            loop.add_signal_handler(signum, callback)


async def until_stopped() -> None:
    """Return on SIGTERM or SIGINT."""
    stop = asyncio.Event()
    on_stop(stop.set)
    await stop.wait()
