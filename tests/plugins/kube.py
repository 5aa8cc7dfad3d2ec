"""Fixtures: a fresh strict Kubernetes API emulator per test (built-ins + the repo's CRDs),
and a tiny synchronous HTTP helper for talking to it in tests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from webordinary.devkit.kubeapi import KubeAPI, start_kube_api

REPO_CRDS = Path(__file__).resolve().parents[2] / "crds"

PATCH_TYPES = {
    "json": "application/json-patch+json",
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "apply": "application/apply-patch+yaml",
}


@pytest.fixture
def kube_api() -> Iterator[KubeAPI]:
    """A FRESH emulator per test: built-ins plus every crds/*.yaml in the repo registered."""
    api = start_kube_api([REPO_CRDS])
    try:
        yield api
    finally:
        api.stop()


class KubeHTTP:
    """Plain HTTP against an emulator (or any API server): paths in, responses out."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.session = requests.Session()

    def get(self, path: str, **params: Any) -> requests.Response:
        return self.session.get(self.url + path, params=params, timeout=10)

    def post(self, path: str, body: Any, **params: Any) -> requests.Response:
        return self.session.post(self.url + path, json=body, params=params, timeout=10)

    def put(self, path: str, body: Any, **params: Any) -> requests.Response:
        return self.session.put(self.url + path, json=body, params=params, timeout=10)

    def patch(self, path: str, body: Any, kind: str = "merge", **params: Any
              ) -> requests.Response:
        return self.session.patch(self.url + path, data=json.dumps(body), params=params,
                                  headers={"Content-Type": PATCH_TYPES[kind]}, timeout=10)

    def delete(self, path: str, body: Any = None, **params: Any) -> requests.Response:
        return self.session.delete(self.url + path, json=body, params=params, timeout=10)

    def watch(self, path: str, timeout: int = 1, **params: Any) -> list[dict[str, Any]]:
        """All events of a watch that ends by itself after `timeout` seconds."""
        params = {"watch": "true", "timeoutSeconds": str(timeout), **params}
        with self.session.get(self.url + path, params=params, stream=True,
                              timeout=timeout + 10) as response:
            assert response.status_code == 200, response.text
            return [json.loads(line) for line in response.iter_lines() if line]


@pytest.fixture
def kube_http(kube_api: KubeAPI) -> KubeHTTP:
    """HTTP helper bound to the `kube_api` emulator."""
    return KubeHTTP(kube_api.url)
