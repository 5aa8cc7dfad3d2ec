"""`python -m webordinary.operator`: run the operator with settings from the environment."""

from __future__ import annotations

import asyncio
import logging
import socket

import kopf

from webordinary.operator.handlers import register
from webordinary.operator.settings import OperatorSettings


def main() -> None:
    settings = OperatorSettings()
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    registry = kopf.OperatorRegistry()
    register(registry, settings)
    namespaces = settings.watch_namespaces()
    asyncio.run(kopf.operator(
        registry=registry,
        standalone=True,
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=liveness_endpoint(settings),
    ))


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
