"""`python -m webordinary.hermes`: run Hermes until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal

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
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    asyncio.run(_serve(settings))


if __name__ == "__main__":
    main()
