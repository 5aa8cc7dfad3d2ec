"""The operator's Kubernetes client re-reads a rotated service-account token: after the kubelet
rewrites the token file, the next call carries the new token (the old one no longer works)."""

from __future__ import annotations

import os
from pathlib import Path

import kopf
import pytest

from webordinary.devkit.kubeapi import KubeAPI
from webordinary.operator import builders
from webordinary.operator.adapters.kube import KubeClient, KubeError


async def test_the_next_call_uses_the_rotated_token(kube_api: KubeAPI, tmp_path: Path) -> None:
    kube_api.create_namespaces("tenants")
    token = tmp_path / "token"
    token.write_text("token-1\n")
    kube_api.accept_tokens({"token-1"})
    client = KubeClient(kopf.ConnectionInfo(server=kube_api.url, scheme="Bearer",
                                            token="token-1"), token_file=str(token))
    try:
        assert await client.get(builders.SERVICE, "tenants", "nothing") is None
        # the kubelet rotates the token; the API server stops accepting the old one
        token.write_text("token-2\n")
        os.utime(token, ns=(1, 2))  # a new mtime even within the same clock tick
        kube_api.accept_tokens({"token-2"})
        assert await client.get(builders.SERVICE, "tenants", "nothing") is None
        kube_api.accept_tokens({"token-3"})
        with pytest.raises(KubeError) as refused:
            await client.get(builders.SERVICE, "tenants", "nothing")
        assert refused.value.status == 401
    finally:
        await client.close()
