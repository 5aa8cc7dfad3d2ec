"""Hermes works in the `webordinary` namespace: create it first, as on a real cluster
(the API server refuses objects in a namespace that does not exist)."""

from __future__ import annotations

import pytest

from webordinary.devkit.kubeapi import KubeAPI


@pytest.fixture
def kube_api(kube_api: KubeAPI) -> KubeAPI:
    kube_api.create_namespaces("webordinary")
    return kube_api
