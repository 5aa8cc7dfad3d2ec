"""`python -m webordinary.operator`: run the operator with settings from the environment."""

from __future__ import annotations

import asyncio
import logging

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
        liveness_endpoint=settings.liveness_endpoint(),
    ))


if __name__ == "__main__":
    main()
