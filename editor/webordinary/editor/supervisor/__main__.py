"""`python -m webordinary.editor.supervisor`: the preview container's process."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from aiohttp import web
from pydantic import ValidationError

from webordinary.editor.previews import Previews
from webordinary.editor.supervisor.app import Supervisor
from webordinary.editor.supervisor.settings import SupervisorSettings

log = logging.getLogger("webordinary.editor.supervisor")


async def serve(settings: SupervisorSettings) -> None:
    previews = Previews(
        settings.sessions, port=settings.port, metrics_port=settings.metrics_port,
        max_active=settings.max_active, host=settings.host,
        allowed_hosts=settings.allowed_hosts or None, standby=settings.standby,
        tmp=settings.tmp,
    )
    supervisor = Supervisor(settings, previews)
    await previews.start()
    control = web.AppRunner(supervisor.app(), access_log=None, shutdown_timeout=2.0)
    await control.setup()
    await web.TCPSite(control, "127.0.0.1", settings.control_port).start()
    known = supervisor.register_known()
    previews.set_ready(True)
    log.info("previews on port %s, control on port %s, health and metrics on port %s "
             "(%d known session(s), uid %d)", previews.port, control.addresses[0][1],
             previews.metrics_port, known, os.getuid())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    previews.set_ready(False)
    await control.cleanup()
    await previews.close()


def main() -> None:
    try:
        settings = SupervisorSettings()
    except ValidationError as exc:
        print(f"invalid preview supervisor configuration:\n{exc}", file=sys.stderr)
        sys.exit(2)
    os.umask(0o007)
    logging.basicConfig(level=settings.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("asyncio", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
