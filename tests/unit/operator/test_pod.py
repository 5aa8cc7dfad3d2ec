"""The split editor pod: who runs where, under which uid, with which files and secrets."""

from __future__ import annotations

from typing import Any

import kubernetes_validate

from tests.unit.operator.test_builders import OWNER, QUEUES, make_settings, make_spec
from webordinary.operator import builders


def _pod(**settings: Any) -> dict[str, Any]:
    spec = make_spec(repository={"url": "https://git.example.com/site.git",
                                 "credentialsSecretRef": {"name": "git-creds"}})
    dep = builders.deployment(OWNER, spec, QUEUES, 1, make_settings(**settings))
    kubernetes_validate.validate(dep, "1.33.0", strict=True)
    pod: dict[str, Any] = dep["spec"]["template"]
    return pod


def _containers(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in pod["spec"]["containers"]}


def test_every_container_has_its_own_uid_and_no_shared_processes() -> None:
    pod = _pod()
    containers = _containers(pod)
    uids = {name: c["securityContext"]["runAsUser"] for name, c in containers.items()}
    assert len(set(uids.values())) == 3
    assert uids["editor"] == pod["spec"]["securityContext"]["fsGroup"]
    assert pod["spec"]["shareProcessNamespace"] is False
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert pod["metadata"]["annotations"]["eks.amazonaws.com/skip-containers"] == \
        "preview,credentials"


def test_customer_code_container_sees_only_the_sessions_folder_and_no_secret() -> None:
    preview = _containers(_pod())["preview"]
    assert not [e for e in preview["env"] if "valueFrom" in e]
    names = {e["name"] for e in preview["env"]}
    assert not {n for n in names if "KEY" in n or "TOKEN" in n or n.startswith("AWS_")}
    mounts = {m["name"]: m for m in preview["volumeMounts"]}
    assert mounts["workspace"]["subPath"] == "sessions"
    assert mounts["workspace"]["mountPath"] == "/workspace/sessions"
    assert "credentials-run" not in mounts
    assert preview["command"][-1] == "webordinary.editor.supervisor"


def test_credentials_volume_is_shared_by_editor_and_proxy_only() -> None:
    containers = _containers(_pod())
    holders = {name for name, c in containers.items()
               if any(m["name"] == "credentials-run" for m in c["volumeMounts"])}
    assert holders == {"editor", "credentials"}
    editor_mount = next(m for m in containers["editor"]["volumeMounts"]
                        if m["name"] == "credentials-run")
    assert editor_mount["readOnly"] is True
    assert [m["name"] for m in containers["credentials"]["volumeMounts"]] == ["credentials-run"]


def test_read_only_roots_with_size_limited_scratch_and_ephemeral_storage() -> None:
    pod = _pod()
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    for container in pod["spec"]["containers"]:
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert "ephemeral-storage" in container["resources"]["requests"]
        assert "ephemeral-storage" in container["resources"]["limits"]
        for mount in container["volumeMounts"]:
            empty = volumes[mount["name"]].get("emptyDir")
            if empty is not None:
                assert empty["sizeLimit"]


def test_sandboxed_runtime_profile_reaches_every_editor_pod() -> None:
    plain = _pod()["spec"]
    assert "runtimeClassName" not in plain
    assert "tolerations" not in plain
    sandboxed = _pod(
        editor_runtime_class_name="gvisor",
        editor_node_selector={"sandbox.gke.io/runtime": "gvisor"},
        editor_tolerations=[{"key": "sandbox", "operator": "Equal", "value": "gvisor",
                             "effect": "NoSchedule"}],
    )["spec"]
    assert sandboxed["runtimeClassName"] == "gvisor"
    assert sandboxed["nodeSelector"] == {"sandbox.gke.io/runtime": "gvisor"}
    assert sandboxed["tolerations"][0]["value"] == "gvisor"


def test_preview_hosts_are_pinned() -> None:
    preview = _containers(_pod(preview_base_url="https://preview.example.com"))["preview"]
    hosts = next(e["value"] for e in preview["env"]
                 if e["name"] == "WEBORDINARY_PREVIEW_ALLOWED_HOSTS").split(",")
    assert hosts[0] == "preview.example.com"
    assert all(h.startswith(("preview.example.com", f"{OWNER.name}-editor")) for h in hosts)
