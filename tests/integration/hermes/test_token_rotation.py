"""Hermes' Kubernetes client re-reads a rotated service-account token: after the kubelet
rewrites the token file, the next call carries the new token (the old one no longer works)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from webordinary.devkit.kubeapi import KubeAPI
from webordinary.hermes.adapters.kube import HttpEnvironmentApi, KubeError


async def test_the_next_call_uses_the_rotated_token(kube_api: KubeAPI, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("token-1\n")
    kube_api.accept_tokens({"token-1"})
    api = HttpEnvironmentApi(kube_api.url, token_file=token)
    try:
        assert await api.list("webordinary") == []
        token.write_text("token-2\n")
        os.utime(token, ns=(1, 2))  # a new mtime even within the same clock tick
        kube_api.accept_tokens({"token-2"})
        assert await api.list("webordinary") == []
        kube_api.accept_tokens({"token-3"})
        with pytest.raises(KubeError) as refused:
            await api.list("webordinary")
        assert refused.value.status == 401
    finally:
        await api.close()
