"""The local kubelet's pure parts: env resolution and volume mapping from a Deployment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from webordinary.devkit.kubelet import container_env, volume_dir, workspace_mounts


def deployment() -> dict[str, Any]:
    return {
        "metadata": {"name": "env-editor", "namespace": "ns"},
        "spec": {"template": {"spec": {
            "volumes": [
                {"name": "workspace", "persistentVolumeClaim": {"claimName": "env-workspace"}},
                {"name": "tmp", "emptyDir": {}},
            ],
            "containers": [{
                "name": "editor",
                "env": [
                    {"name": "WEBORDINARY_WORKSPACE", "value": "/workspace"},
                    {"name": "ANTHROPIC_API_KEY",
                     "valueFrom": {"secretKeyRef": {"name": "anthropic", "key": "apiKey"}}},
                    {"name": "WEBORDINARY_GIT_TOKEN",
                     "valueFrom": {"secretKeyRef": {"name": "git", "key": "token",
                                                    "optional": True}}},
                ],
                "volumeMounts": [
                    {"name": "workspace", "mountPath": "/workspace"},
                    {"name": "tmp", "mountPath": "/tmp"},
                ],
            }],
        }}},
    }


def test_env_resolves_secret_refs() -> None:
    env, problems = container_env(deployment(), {("anthropic", "apiKey"): "sk-local"})
    assert env == {"WEBORDINARY_WORKSPACE": "/workspace", "ANTHROPIC_API_KEY": "sk-local"}
    assert problems == []


def test_missing_required_secret_is_reported() -> None:
    env, problems = container_env(deployment(), {})
    assert "ANTHROPIC_API_KEY" not in env
    assert problems == ["secret anthropic/apiKey not found for ANTHROPIC_API_KEY"]


def test_only_pvc_mounts_are_mapped(tmp_path: Path) -> None:
    assert workspace_mounts(deployment()) == {"/workspace": "env-workspace"}
    path = volume_dir(tmp_path, "ns", "env-workspace")
    assert path.is_dir()
    assert path == tmp_path / "volumes" / "ns" / "env-workspace"


def test_ingress_picks_the_longest_matching_prefix() -> None:
    from webordinary.devkit.ingress import match_backend

    def ingress(ns: str, paths: dict[str, str]) -> dict[str, Any]:
        return {"metadata": {"namespace": ns}, "spec": {"rules": [{"http": {"paths": [
            {"path": p, "pathType": "Prefix", "backend": {"service": {"name": s}}}
            for p, s in paths.items()]}}]}}

    ingresses = [ingress("a", {"/session/abc": "env-a"}), ingress("b", {"/session/abcd": "env-b"})]
    assert match_backend(ingresses, "/session/abc/") == ("a", "env-a")
    assert match_backend(ingresses, "/session/abc") == ("a", "env-a")
    assert match_backend(ingresses, "/session/abcd/x.css") == ("b", "env-b")
    assert match_backend(ingresses, "/session/abcde/") is None
    assert match_backend(ingresses, "/other") is None
