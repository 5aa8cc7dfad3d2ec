"""Wiring: settings -> adapters -> service, plus the /metrics and /healthz endpoints."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from aiohttp import web

from webordinary.hermes.adapters.aws import AwsClients, S3Blobs, SesMailer, SmtpMailer
from webordinary.hermes.adapters.kube import EnvironmentApi, KubeEnvironments
from webordinary.hermes.adapters.smtp import SmtpHandler, start_smtp
from webordinary.hermes.adapters.sqs import AsyncSqs
from webordinary.hermes.service import Hermes, RetryLater
from webordinary.hermes.settings import HermesSettings

log = logging.getLogger(__name__)


@dataclass
class Running:
    """A started Hermes with its servers (ports are the bound ones)."""

    hermes: Hermes
    clients: AwsClients
    kube: EnvironmentApi
    stop: asyncio.Event
    task: asyncio.Task[None]
    servers: list[asyncio.Server] = field(default_factory=list)
    web_runner: web.AppRunner | None = None
    smtp_port: int | None = None
    metrics_port: int | None = None

    async def close(self) -> None:
        self.stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        for server in self.servers:
            server.close()
            await server.wait_closed()
        if self.web_runner is not None:
            await self.web_runner.cleanup()
        await self.kube.close()
        close = getattr(self.hermes.queues, "close", None)
        if close is not None:
            await close()
        self.clients.close()


def build(
    settings: HermesSettings, kube: EnvironmentApi | None = None
) -> tuple[Hermes, AwsClients]:
    clients = AwsClients(settings.aws_region, settings.aws_endpoint_url, settings.aws_threads)
    mailer = (
        SmtpMailer(settings.smtp_outbound_host, settings.smtp_outbound_port, clients.executor)
        if settings.smtp_outbound_host
        else SesMailer(clients)
    )
    hermes = Hermes(
        settings,
        kube=kube or KubeEnvironments.from_settings(
            settings.kube_api_url,
            settings.kube_api_token.get_secret_value() if settings.kube_api_token else None),
        queues=AsyncSqs(settings.aws_region, settings.aws_endpoint_url),
        mailer=mailer,
        blobs=S3Blobs(clients),
    )
    return hermes, clients


def _web_app(hermes: Hermes) -> web.Application:
    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=hermes.metrics.render(),
                            content_type="text/plain", charset="utf-8")

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(_: web.Request) -> web.Response:
        hermes.routing.get()  # picks up an edit of the routing file
        routing_error = hermes.routing.error
        if not hermes.ready or routing_error:
            return web.Response(status=503, text=routing_error or "not ready")
        return web.Response(text="ready")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def start(settings: HermesSettings, kube: EnvironmentApi | None = None) -> Running:
    """Start every loop and server; `await running.close()` stops them."""
    hermes, clients = build(settings, kube)
    await hermes.parser.warm()  # worker processes up before the first mail
    stop = asyncio.Event()
    task = asyncio.create_task(hermes.run(stop), name="hermes")
    running = Running(hermes=hermes, clients=clients, kube=hermes.kube, stop=stop, task=task)
    runner = web.AppRunner(_web_app(hermes))
    await runner.setup()
    site = web.TCPSite(runner, settings.metrics_host, settings.metrics_port)
    await site.start()
    running.web_runner = runner
    server = getattr(site, "_server", None)
    if server is not None and server.sockets:
        running.metrics_port = server.sockets[0].getsockname()[1]
    if settings.smtp_enabled:
        handler = SmtpHandler(hermes.handle_inbound, settings.smtp_trusted_networks, (RetryLater,))
        smtp = await start_smtp(handler, settings.smtp_host, settings.smtp_port,
                                settings.max_message_bytes * 2)
        running.servers.append(smtp)
        running.smtp_port = smtp.sockets[0].getsockname()[1]
        log.info("SMTP listening on %s:%s", settings.smtp_host, running.smtp_port)
    return running
