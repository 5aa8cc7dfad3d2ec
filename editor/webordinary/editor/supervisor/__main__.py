"""`python -m webordinary.editor.supervisor`: the preview container's process."""

from __future__ import annotations

import asyncio
import logging
import os

from aiohttp import web

from webordinary.editor.previews import Previews
from webordinary.editor.process import log_to_stderr, settings_or_exit, until_stopped
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
    await until_stopped()
    previews.set_ready(False)
    await control.cleanup()
    await previews.close()


def main() -> None:
    settings = settings_or_exit(SupervisorSettings, "preview supervisor configuration")
    os.umask(0o007)
    log_to_stderr(settings.log_level, quiet=("asyncio", "aiohttp.access"))
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
