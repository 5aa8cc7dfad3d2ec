"""`python -m webordinary.gateway` / `webordinary-gateway`: serve previews until SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from webordinary.gateway.app import Gateway
from webordinary.gateway.settings import GatewaySettings

log = logging.getLogger("webordinary.gateway")


async def serve(settings: GatewaySettings) -> None:
    gateway = Gateway(settings)
    main = web.AppRunner(gateway.app(), access_log=None, shutdown_timeout=10.0)
    await main.setup()
    await web.TCPSite(main, settings.host, settings.port, backlog=1024).start()
    health: web.AppRunner | None = None
    if settings.metrics_port is not None:
        health = web.AppRunner(gateway.health_app(), access_log=None)
        await health.setup()
        await web.TCPSite(health, settings.metrics_host, settings.metrics_port).start()
    for runner, what in ((main, "previews"), (health, "health and metrics")):
        if runner is not None:
            for address in runner.addresses:
                log.info("serving %s on %s:%s", what, address[0], address[1])
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    log.info("stopping: finishing open requests")
    await main.cleanup()
    if health is not None:
        await health.cleanup()


def main() -> None:
    settings = GatewaySettings()
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
