"""`python -m webordinary.editor.credentials`: the credential proxy container's process."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from webordinary.editor.credentials.proxy import CredentialProxy, load_or_create_token
from webordinary.editor.credentials.settings import ProxySettings
from webordinary.editor.previews.metrics import health_app
from webordinary.editor.process import log_to_stderr, settings_or_exit, until_stopped

log = logging.getLogger("webordinary.editor.credentials")


async def serve(settings: ProxySettings) -> None:
    token = load_or_create_token(settings.token_file)
    proxy = CredentialProxy(settings, token)
    runners = []
    runner = web.AppRunner(proxy.app(), access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    runners.append(runner)
    await web.TCPSite(runner, settings.host, settings.port).start()
    port = runner.addresses[0][1]
    if settings.metrics_port is not None:
        metrics = web.AppRunner(health_app(lambda: True), access_log=None)
        await metrics.setup()
        runners.append(metrics)
        await web.TCPSite(metrics, settings.metrics_host, settings.metrics_port).start()
    log.info("credential proxy on %s:%s (API %s, git host %s, key %s, git token %s)",
             settings.host, port, settings.api_base_url, settings.git_host() or "-",
             "set" if settings.api_key else "missing",
             "set" if settings.git_token else "none")
    await until_stopped()
    for each in reversed(runners):
        await each.cleanup()


def main() -> None:
    settings = settings_or_exit(ProxySettings, "credential proxy configuration")
    log_to_stderr(settings.log_level)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
