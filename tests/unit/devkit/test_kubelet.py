"""The local kubelet's pure parts: env resolution (containers.resolve_env) and volume mapping."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from webordinary.devkit.containers import plan_pod, resolve_env
from webordinary.devkit.kubelet import volume_dir, workspace_mounts


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


def editor(deployment: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]
    return container


def test_env_resolves_secret_refs() -> None:
    env, problems = resolve_env(editor(deployment()), {("anthropic", "apiKey"): "sk-local"})
    assert env == {"WEBORDINARY_WORKSPACE": "/workspace", "ANTHROPIC_API_KEY": "sk-local"}
    assert problems == []


def test_missing_required_secret_is_reported() -> None:
    env, problems = resolve_env(editor(deployment()), {})
    assert "ANTHROPIC_API_KEY" not in env
    assert problems == ["secret anthropic/apiKey not found for ANTHROPIC_API_KEY"]


def test_only_pvc_mounts_are_mapped(tmp_path: Path) -> None:
    assert workspace_mounts(deployment()) == {"/workspace": "env-workspace"}
    path = volume_dir(tmp_path, "ns", "env-workspace")
    assert path.is_dir()
    assert path == tmp_path / "volumes" / "ns" / "env-workspace"


def test_endpoint_slice_is_what_the_controller_writes_with_local_ports() -> None:
    import kubernetes_validate

    from webordinary.devkit.endpoints import differs, endpoint_slice

    service = {"metadata": {"name": "env-editor", "namespace": "t", "uid": "u1",
                            "labels": {"app.kubernetes.io/name": "webordinary-editor"}},
               "spec": {"ports": [{"name": "preview", "port": 4321, "targetPort": "preview",
                                   "protocol": "TCP"},
                                  {"name": "metrics", "port": 9090, "targetPort": "metrics",
                                   "protocol": "TCP"}]}}
    ready = endpoint_slice(service, {"preview": 40001, "metrics": 40002}, True)
    kubernetes_validate.validate(ready, "1.33.0", strict=True)
    assert ready["metadata"]["labels"]["kubernetes.io/service-name"] == "env-editor"
    assert ready["metadata"]["labels"]["app.kubernetes.io/name"] == "webordinary-editor"
    assert ready["ports"][0] == {"name": "preview", "protocol": "TCP", "port": 40001}
    assert ready["endpoints"] == [{"addresses": ["127.0.0.1"], "conditions": {
        "ready": True, "serving": True, "terminating": False}}]
    starting = endpoint_slice(service, {"preview": 40001, "metrics": 40002}, False)
    assert starting["endpoints"][0]["conditions"]["ready"] is False
    asleep = endpoint_slice(service, None, False)
    kubernetes_validate.validate(asleep, "1.33.0", strict=True)
    assert asleep["endpoints"] == []
    assert differs(asleep, ready)
    assert not differs(ready, ready)


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


def test_named_containers_can_be_stood_in_for_and_the_others_run(tmp_path: Path) -> None:
    doc = deployment()
    spec = doc["spec"]["template"]["spec"]
    spec["containers"][0]["env"] = spec["containers"][0]["env"][:1]
    spec["containers"].append({"name": "preview", "command": ["python", "-m", "webordinary.x"],
                               "ports": [{"name": "preview", "containerPort": 4321}]})
    plan = plan_pod(doc, {}, tmp_path, commands={"editor": ["pause", "--now"]})
    assert not plan.problems
    editor_launch, preview_launch = plan.containers
    # (as root the argv is wrapped to drop to the container's uid: compare its tail)
    assert " ".join(editor_launch.argv).endswith("pause --now")
    assert " ".join(preview_launch.argv).endswith("-m webordinary.x"), "the others run"
    assert set(plan.named_ports) == {"preview"}
