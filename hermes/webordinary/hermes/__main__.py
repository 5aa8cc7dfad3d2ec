"""`python -m webordinary.hermes`: run Hermes until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal

from webordinary.contracts import logformat
from webordinary.hermes.app import start
from webordinary.hermes.settings import HermesSettings


async def _serve(settings: HermesSettings) -> None:
    running = await start(settings)
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)
    logging.getLogger(__name__).info(
        "Hermes running (namespace %s, metrics :%s)", settings.namespace, running.metrics_port
    )
    await done.wait()
    await running.close()


def main() -> None:
    settings = HermesSettings()
    logformat.configure(settings.log_level, settings.log_format)
    asyncio.run(_serve(settings))


if __name__ == "__main__":
    main()
