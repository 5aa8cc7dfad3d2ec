"""The scripted Messages API stand-in: one server per test session, reset for every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from webordinary.devkit.messages_api import MessagesAPI


@pytest.fixture(scope="session")
def messages_api_session() -> Iterator[MessagesAPI]:
    api = MessagesAPI(demo=False).start()
    yield api
    api.stop()


@pytest.fixture
def messages_api(messages_api_session: MessagesAPI) -> Iterator[MessagesAPI]:
    """A stand-in at `messages_api.base_url` with no queued turns and no recorded requests.

    Scripted: `messages_api.push(text(...), tools(read(...)), stall(), error(500))`; with nothing
    queued it answers 500 (set `messages_api.demo = True` for the demo script).
    """
    messages_api_session.reset()
    messages_api_session.demo = False
    yield messages_api_session
    messages_api_session.release()
