"""Fixture: a fresh strict Kubernetes API emulator per test (built-ins + the repo's CRDs)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from webordinary.devkit.kubeapi import KubeAPI, start_kube_api

REPO_CRDS = Path(__file__).resolve().parents[2] / "crds"


@pytest.fixture
def kube_api() -> Iterator[KubeAPI]:
    """A FRESH emulator per test: built-ins plus every crds/*.yaml in the repo registered."""
    api = start_kube_api([REPO_CRDS])
    try:
        yield api
    finally:
        api.stop()
