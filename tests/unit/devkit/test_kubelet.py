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


def test_status_reports_like_a_cluster() -> None:
    from webordinary.devkit.kubelet import deployment_status, pod_status

    wanted = {"metadata": {"generation": 2}, "spec": {"replicas": 1}}
    starting = deployment_status(wanted, running=True, ready=False)
    assert (starting["availableReplicas"], starting["unavailableReplicas"]) == (0, 1)
    assert starting["conditions"][0]["status"] == "False"
    available = deployment_status(wanted, running=True, ready=True)
    assert (available["availableReplicas"], available["observedGeneration"]) == (1, 2)
    assert available["conditions"][0]["reason"] == "MinimumReplicasAvailable"
    crash = pod_status(None, 3, 1, "CrashLoopBackOff", "2026-01-01T00:00:00Z")
    container = crash["containerStatuses"][0]
    assert container["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert "exit code 1" in container["state"]["waiting"]["message"]
    assert container["restartCount"] == 3
    assert {c["type"]: c["status"] for c in crash["conditions"]}["Ready"] == "False"
