"""What every boto3 client of the operator shares: retries, pool size and timeouts."""

from __future__ import annotations

from botocore.config import Config

from webordinary.operator.settings import OperatorSettings


def client_config(settings: OperatorSettings) -> Config:
    """Bounded retries and timeouts, and one pooled connection per concurrent call."""
    return Config(
        retries={"mode": "standard", "max_attempts": settings.aws_max_attempts},
        max_pool_connections=settings.aws_concurrency,
        connect_timeout=5,
        read_timeout=20,
    )
