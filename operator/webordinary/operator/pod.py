"""The editor pod's containers: editor, preview supervisor and credential proxy (pure builders).

Customer code (npm scripts, Astro config, pages) runs only in `preview`, under its own uid,
with no secret in its environment or files; the model key and the git token live only in
`credentials`, under a third uid. The containers share the pod's loopback, not its processes
(no shareProcessNamespace), and every root filesystem is read-only: what a container writes
goes to the workspace volume or a size-limited emptyDir.
"""

from __future__ import annotations

from typing import Any, Final

from webordinary.contracts import environment as env
from webordinary.contracts.editor_env import (
    METRICS_PORT,
    PREVIEW_PORT,
    SECRET_ENV_ANTHROPIC_API_KEY,
    SECRET_ENV_GIT_TOKEN,
    WORKSPACE_MOUNT,
)
from webordinary.operator.settings import OperatorSettings

EDITOR: Final = "editor"
PREVIEW: Final = "preview"
CREDENTIALS: Final = "credentials"
INIT: Final = "workspace-init"
WORKSPACE_VOLUME: Final = "workspace"
CREDENTIALS_RUN: Final = "credentials-run"
CREDENTIALS_DIR: Final = "/run/webordinary/credentials"
TOKEN_FILE: Final = f"{CREDENTIALS_DIR}/token"
SESSIONS_SUBPATH: Final = "sessions"
CONTROL_PORT: Final = 4322
PREVIEW_METRICS_PORT: Final = 9091
PROXY_PORT: Final = 8099
PROXY_METRICS_PORT: Final = 9092
# IRSA / EKS Pod Identity inject AWS credentials into every container unless told otherwise:
# only the editor calls AWS (its queues).
SKIP_AWS_INJECTION: Final = "eks.amazonaws.com/skip-containers"


def uids(settings: OperatorSettings) -> dict[str, int]:
    """One uid per container; the pod's fsGroup is the editor's uid."""
    base = settings.editor_run_as_user
    return {
        EDITOR: base,
        PREVIEW: settings.preview_run_as_user or base + 1,
        CREDENTIALS: settings.credentials_run_as_user or base + 2,
    }


def security_context(uid: int) -> dict[str, Any]:
    return {
        "runAsUser": uid,
        "runAsGroup": uid,
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _tmp(name: str, size: str) -> dict[str, Any]:
    return {"name": name, "emptyDir": {"sizeLimit": size}}


def _storage(request: str, limit: str) -> tuple[dict[str, str], dict[str, str]]:
    return {"ephemeral-storage": request}, {"ephemeral-storage": limit}


def preview_hosts(owner_name: str, namespace: str, public_host: str | None) -> list[str]:
    """What the preview router and Vite answer for: the public preview host and the editor
    Service's own names (a gateway may address it by those)."""
    service = f"{owner_name}-editor"
    names = [service, f"{service}.{namespace}", f"{service}.{namespace}.svc",
             f"{service}.{namespace}.svc.cluster.local"]
    return ([public_host] if public_host else []) + names


def editor_container(
    *, image: str, settings: OperatorSettings, env_vars: list[dict[str, Any]],
    resources: dict[str, Any],
) -> dict[str, Any]:
    requests, limits = _storage(settings.editor_ephemeral_storage_request,
                                settings.editor_ephemeral_storage_limit)
    resources = {"requests": {**resources["requests"], **requests},
                 "limits": {**resources["limits"], **limits}}
    wiring = [
        {"name": "WEBORDINARY_EDITOR_CREDENTIALS_URL", "value": f"http://127.0.0.1:{PROXY_PORT}"},
        {"name": "WEBORDINARY_EDITOR_CREDENTIALS_TOKEN_FILE", "value": TOKEN_FILE},
        {"name": "WEBORDINARY_EDITOR_SUPERVISOR_URL", "value": f"http://127.0.0.1:{CONTROL_PORT}"},
        {"name": "TMPDIR", "value": "/tmp"},
    ]
    return {
        "name": EDITOR,
        "image": image,
        "imagePullPolicy": settings.editor_image_pull_policy,
        "command": ["python", "-m", "webordinary.editor"],
        "env": env_vars + wiring,
        "ports": [{"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}],
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": "metrics"},
            "periodSeconds": 5,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": "metrics"},
            "initialDelaySeconds": 10,
            "periodSeconds": 20,
            "failureThreshold": 3,
        },
        "resources": resources,
        "securityContext": security_context(uids(settings)[EDITOR]),
        "volumeMounts": [
            {"name": WORKSPACE_VOLUME, "mountPath": WORKSPACE_MOUNT},
            {"name": CREDENTIALS_RUN, "mountPath": CREDENTIALS_DIR, "readOnly": True},
            {"name": "editor-tmp", "mountPath": "/tmp"},
        ],
    }


def preview_container(
    *, image: str, settings: OperatorSettings, allowed_hosts: list[str],
) -> dict[str, Any]:
    requests, limits = _storage(settings.preview_ephemeral_storage_request,
                                settings.preview_ephemeral_storage_limit)
    sessions = f"{WORKSPACE_MOUNT}/{SESSIONS_SUBPATH}"
    return {
        "name": PREVIEW,
        "image": image,
        "imagePullPolicy": settings.editor_image_pull_policy,
        "command": ["python", "-m", "webordinary.editor.supervisor"],
        # Nothing secret, nothing inherited: the supervisor's own knobs only.
        "env": [
            {"name": "WEBORDINARY_PREVIEW_SESSIONS", "value": sessions},
            {"name": "WEBORDINARY_PREVIEW_PORT", "value": str(PREVIEW_PORT)},
            {"name": "WEBORDINARY_PREVIEW_CONTROL_PORT", "value": str(CONTROL_PORT)},
            {"name": "WEBORDINARY_PREVIEW_METRICS_PORT", "value": str(PREVIEW_METRICS_PORT)},
            {"name": "WEBORDINARY_PREVIEW_ALLOWED_HOSTS", "value": ",".join(allowed_hosts)},
            {"name": "WEBORDINARY_PREVIEW_MAX_ACTIVE", "value": str(settings.preview_max_active)},
            {"name": "WEBORDINARY_PREVIEW_TMP", "value": "/tmp"},
            {"name": "HOME", "value": "/tmp"},
        ],
        "ports": [
            {"name": "preview", "containerPort": PREVIEW_PORT, "protocol": "TCP"},
            {"name": "preview-metrics", "containerPort": PREVIEW_METRICS_PORT,
             "protocol": "TCP"},
            # Loopback only (the editor's handle); listed for documentation.
            {"name": "control", "containerPort": CONTROL_PORT, "protocol": "TCP"},
        ],
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": "preview-metrics"},
            "periodSeconds": 5,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": "preview-metrics"},
            "initialDelaySeconds": 10,
            "periodSeconds": 20,
            "failureThreshold": 3,
        },
        "resources": {
            "requests": {"cpu": settings.preview_cpu_request,
                         "memory": settings.preview_memory_request, **requests},
            "limits": {"memory": settings.preview_memory_limit, **limits},
        },
        "securityContext": security_context(uids(settings)[PREVIEW]),
        # Only the sessions folder of the volume: not the repository, the journal, the
        # agent's transcripts, nor the credentials volume.
        "volumeMounts": [
            {"name": WORKSPACE_VOLUME, "mountPath": sessions, "subPath": SESSIONS_SUBPATH},
            {"name": "preview-tmp", "mountPath": "/tmp"},
        ],
    }


def credentials_container(
    *, image: str, settings: OperatorSettings, spec: env.EditEnvironmentSpec,
    environment: str, repository_url: str,
) -> dict[str, Any]:
    requests, limits = _storage("16Mi", "64Mi")
    variables: list[dict[str, Any]] = [
        {"name": "WEBORDINARY_ENVIRONMENT", "value": environment},
        {"name": "WEBORDINARY_REPOSITORY_URL", "value": repository_url},
        {"name": "WEBORDINARY_CREDENTIALS_PORT", "value": str(PROXY_PORT)},
        {"name": "WEBORDINARY_CREDENTIALS_METRICS_PORT", "value": str(PROXY_METRICS_PORT)},
        {"name": "WEBORDINARY_CREDENTIALS_TOKEN_FILE", "value": TOKEN_FILE},
        {"name": "WEBORDINARY_CREDENTIALS_API_BASE_URL", "value": settings.anthropic_api_base_url},
    ]
    if settings.anthropic_secret_name:
        variables.append({
            "name": SECRET_ENV_ANTHROPIC_API_KEY,
            "valueFrom": {"secretKeyRef": {
                "name": settings.anthropic_secret_name, "key": settings.anthropic_secret_key,
            }},
        })
    credentials = spec.repository.credentials_secret_ref
    if credentials is not None:
        variables.append({
            "name": SECRET_ENV_GIT_TOKEN,
            "valueFrom": {"secretKeyRef": {
                "name": credentials.name, "key": credentials.key or settings.git_token_secret_key,
            }},
        })
    return {
        "name": CREDENTIALS,
        "image": image,
        "imagePullPolicy": settings.editor_image_pull_policy,
        "command": ["python", "-m", "webordinary.editor.credentials"],
        "env": variables,
        "ports": [
            {"name": "creds-metrics", "containerPort": PROXY_METRICS_PORT, "protocol": "TCP"},
            # Loopback only, and the placeholder key is needed too.
            {"name": "proxy", "containerPort": PROXY_PORT, "protocol": "TCP"},
        ],
        "readinessProbe": {
            "httpGet": {"path": "/healthz", "port": "creds-metrics"},
            "periodSeconds": 5,
            "failureThreshold": 3,
        },
        "resources": {
            "requests": {"cpu": "10m", "memory": settings.credentials_memory_request,
                         **requests},
            "limits": {"memory": settings.credentials_memory_limit, **limits},
        },
        "securityContext": security_context(uids(settings)[CREDENTIALS]),
        "volumeMounts": [{"name": CREDENTIALS_RUN, "mountPath": CREDENTIALS_DIR}],
    }


def init_container(*, image: str, settings: OperatorSettings) -> dict[str, Any]:
    """Creates the sessions folder as the editor's before the preview mounts it by subPath
    (the kubelet would otherwise create it as root)."""
    return {
        "name": INIT,
        "image": image,
        "imagePullPolicy": settings.editor_image_pull_policy,
        "command": ["python", "-c",
                    "import os; os.makedirs(os.path.join(os.environ['WORKSPACE'], "
                    f"'{SESSIONS_SUBPATH}'), exist_ok=True)"],
        "env": [{"name": "WORKSPACE", "value": WORKSPACE_MOUNT}],
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"},
                      "limits": {"memory": "64Mi"}},
        "securityContext": security_context(uids(settings)[EDITOR]),
        "volumeMounts": [{"name": WORKSPACE_VOLUME, "mountPath": WORKSPACE_MOUNT}],
    }


def volumes(claim: str, settings: OperatorSettings) -> list[dict[str, Any]]:
    return [
        {"name": WORKSPACE_VOLUME, "persistentVolumeClaim": {"claimName": claim}},
        {"name": CREDENTIALS_RUN, "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
        _tmp("editor-tmp", settings.editor_tmp_size_limit),
        _tmp("preview-tmp", settings.preview_tmp_size_limit),
    ]


def sandbox(settings: OperatorSettings) -> dict[str, Any]:
    """runtimeClassName (gVisor, Kata) and the scheduling that goes with it, when configured."""
    out: dict[str, Any] = {}
    if settings.editor_runtime_class_name:
        out["runtimeClassName"] = settings.editor_runtime_class_name
    if settings.editor_node_selector:
        out["nodeSelector"] = dict(settings.editor_node_selector)
    if settings.editor_tolerations:
        out["tolerations"] = [dict(t) for t in settings.editor_tolerations]
    return out
