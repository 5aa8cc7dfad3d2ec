"""The emulator these tests hold to the API server's contract: the test CRDs (Widget) and the
repository's, with the `shop` namespace."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.plugins.kube import REPO_CRDS, KubeHTTP
from webordinary.devkit.kubeapi import KubeAPI, start_kube_api

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def api() -> Iterator[KubeAPI]:
    api = start_kube_api([FIXTURES, REPO_CRDS])
    api.create_namespaces("shop")
    yield api
    api.stop()


@pytest.fixture
def http(api: KubeAPI) -> KubeHTTP:
    return KubeHTTP(api.url)
