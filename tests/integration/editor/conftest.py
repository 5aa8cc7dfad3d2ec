"""Fixtures for the editor's integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.editor.harness import Rig
from webordinary.devkit.aws import MotoServer
from webordinary.devkit.messages_api import MessagesAPI


@pytest.fixture
def rig(tmp_path: Path, moto: MotoServer, messages_api: MessagesAPI) -> Iterator[Rig]:
    """Fresh queues (input redrives to the DLQ after 2 receives), remote, workspace."""
    made = Rig(base=tmp_path, moto=moto, api=messages_api)
    yield made
    made.close()
