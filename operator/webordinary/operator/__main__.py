"""`python -m webordinary.operator`: run the operator with settings from the environment."""

from __future__ import annotations

import asyncio
import logging
import socket

import kopf
import uvloop

from webordinary.contracts import logformat
from webordinary.operator import heap, peering
from webordinary.operator.handlers import register
from webordinary.operator.settings import OperatorSettings


def main() -> None:
    settings = OperatorSettings()
    if settings.log_format == "json":
        # kopf's JSON records carry the object they are about (k8s_ref)
        kopf.configure(log_format=kopf.LogFormat.JSON, log_refkey="object")
        logformat.set_level(settings.log_level)
    else:
        logformat.configure(settings.log_level, "text")
    heap.FreezeAfterFull().install()  # full collections skip the long-lived heap
    registry = kopf.OperatorRegistry()
    register(registry, settings)
    # peering before kopf starts: its first keepalive already carries our priority
    kopf_settings = kopf.OperatorSettings()
    peering.configure(kopf_settings, settings)
    namespaces = settings.watch_namespaces()
    # uvloop, as `kopf run` itself picks when it is installed: the loop's own work (callbacks,
    # sockets, streams) in C; ~8 % of the operator's CPU in a creation burst
    asyncio.run(kopf.operator(
        registry=registry,
        settings=kopf_settings,
        standalone=settings.peering_name is None,
        peering_name=settings.peering_name,
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=liveness_endpoint(settings),
    ), loop_factory=uvloop.new_event_loop)


def liveness_endpoint(settings: OperatorSettings) -> str | None:
    """kopf's health URL; port 0 means a free one (kopf itself would read 0 as port 80)."""
    if settings.liveness_port != 0:
        return settings.liveness_endpoint()
    with socket.socket() as sock:
        sock.bind((settings.metrics_host, 0))
        port: int = sock.getsockname()[1]
    logging.getLogger(__name__).info("liveness endpoint on port %s", port)
    return settings.model_copy(update={"liveness_port": port}).liveness_endpoint()


if __name__ == "__main__":
    main()
