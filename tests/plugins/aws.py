"""AWS over real HTTP: one moto server per test session, state reset for every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from webordinary.devkit.aws import MotoServer, start_moto


@pytest.fixture(scope="session")
def moto_session() -> Iterator[MotoServer]:
    server = start_moto()
    yield server
    server.stop()


@pytest.fixture
def moto(moto_session: MotoServer) -> Iterator[MotoServer]:
    """A clean moto (no queues, no mail) at `moto.endpoint_url`."""
    moto_session.reset()
    return moto_session
