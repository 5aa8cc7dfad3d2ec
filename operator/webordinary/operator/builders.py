"""Desired state of an environment's Kubernetes children: pure functions, plain dicts out."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlparse

from webordinary.contracts import environment as env
from webordinary.contracts import naming, specpolicy
from webordinary.contracts.duration import parse_duration
from webordinary.contracts.editor_env import (
    METRICS_PORT,
    PREVIEW_PORT,
    SECRET_ENV_ANTHROPIC_API_KEY,
    WORKSPACE_MOUNT,
    EditorEnv,
)
from webordinary.operator import egress, placement, pod
from webordinary.operator.settings import OperatorSettings

Manifest = dict[str, Any]

APP_NAME: Final = "webordinary-editor"
MANAGED_BY: Final = "webordinary-operator"
ROLE_EDITOR: Final = "editor"
ROLE_WORKSPACE: Final = "workspace"
ROLE_PREVIEW: Final = "preview"
ANNOTATION_IRSA: Final = "eks.amazonaws.com/role-arn"
RESERVED_ENV_PREFIXES: Final = specpolicy.RESERVED_ENV_PREFIXES
RESERVED_ENV_NAMES: Final = (SECRET_ENV_ANTHROPIC_API_KEY,)
WORKSPACE_VOLUME: Final = "workspace"
_LABEL_VALUE: Final = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")


@dataclass(frozen=True)
class Owner:
    """The EditEnvironment the children belong to."""

    namespace: str
    name: str
    uid: str


@dataclass(frozen=True)
class Kind:
    """Where a kind lives in the API (enough for a thin REST client)."""

    api_version: str
    kind: str
    plural: str

    @property
    def group_path(self) -> str:
        return "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"


SERVICE_ACCOUNT: Final = Kind("v1", "ServiceAccount", "serviceaccounts")
PVC: Final = Kind("v1", "PersistentVolumeClaim", "persistentvolumeclaims")
SERVICE: Final = Kind("v1", "Service", "services")
DEPLOYMENT: Final = Kind("apps/v1", "Deployment", "deployments")
# Only to remove the per-environment Ingresses earlier versions created.
INGRESS: Final = Kind("networking.k8s.io/v1", "Ingress", "ingresses")
NETWORK_POLICY: Final = Kind("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies")
EDIT_ENVIRONMENT: Final = Kind(env.API_VERSION, env.KIND, env.PLURAL)
KINDS: Final = {k.kind: k for k in (SERVICE_ACCOUNT, PVC, SERVICE, DEPLOYMENT, INGRESS,
                                    NETWORK_POLICY, EDIT_ENVIRONMENT)}


class SpecError(ValueError):
    """A spec the CRD schema let through but that cannot be built; names the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def instance_label(name: str) -> str:
    """An environment's name as a label value: itself (names from naming.environment_name are
    valid label values), hashed only for hand-made names that are not."""
    return name if len(name) <= naming.DNS_LABEL_MAX and _LABEL_VALUE.match(name) else (
        naming.label_value(name)
    )


def selector_labels(owner: Owner) -> dict[str, str]:
    """The labels the Deployment selects its pods by (immutable once created)."""
    return {
        "app.kubernetes.io/name": APP_NAME,
        "app.kubernetes.io/instance": instance_label(owner.name),
    }


def labels(owner: Owner, spec: env.EditEnvironmentSpec, component: str) -> dict[str, str]:
    """app.kubernetes.io/* plus the tenant labels, on every child."""
    return {
        **selector_labels(owner),
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "webordinary",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        env.LABEL_CLIENT: naming.label_value(spec.client_id),
        env.LABEL_PROJECT: naming.label_value(spec.project_id),
        env.LABEL_USER: naming.label_value(spec.user_id),
        env.LABEL_ENVIRONMENT: instance_label(owner.name),
    }


def owner_reference(owner: Owner) -> dict[str, Any]:
    return {
        "apiVersion": env.API_VERSION,
        "kind": env.KIND,
        "name": owner.name,
        "uid": owner.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _metadata(
    owner: Owner,
    spec: env.EditEnvironmentSpec,
    role: str,
    component: str,
    *,
    owned: bool = True,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": naming.child_name(owner.name, role),
        "namespace": owner.namespace,
        "labels": labels(owner, spec, component),
    }
    if annotations:
        meta["annotations"] = annotations
    if owned:
        meta["ownerReferences"] = [owner_reference(owner)]
    return meta


def validate_spec(spec: env.EditEnvironmentSpec) -> None:
    """Semantic checks the CRD schema cannot express; raise SpecError naming the field."""
    for index, var in enumerate(spec.editor.env):
        if var.name in RESERVED_ENV_NAMES or specpolicy.reserved_env_name(var.name):
            raise SpecError(
                f"spec.editor.env[{index}].name",
                f"{var.name!r} is reserved for the operator's contract with the editor",
            )
    names = [var.name for var in spec.editor.env]
    for index, name in enumerate(names):
        if name in names[:index]:
            raise SpecError(f"spec.editor.env[{index}].name", f"{name!r} is set twice")


def service_account(
    owner: Owner, spec: env.EditEnvironmentSpec, settings: OperatorSettings
) -> Manifest:
    role_arn = settings.role_arn(owner.namespace, owner.name)
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _metadata(
            owner, spec, ROLE_EDITOR, "editor",
            annotations={ANNOTATION_IRSA: role_arn} if role_arn else None,
        ),
        # The editor never calls the Kubernetes API: no token to steal (IRSA brings its own).
        "automountServiceAccountToken": False,
    }


def persistent_volume_claim(
    owner: Owner, spec: env.EditEnvironmentSpec, access_modes: list[str] | None = None
) -> Manifest:
    """The workspace. No ownerReference: user work outlives the environment unless asked."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _metadata(owner, spec, ROLE_WORKSPACE, "workspace", owned=False),
        "spec": {
            "accessModes": access_modes or ["ReadWriteMany"],
            "storageClassName": spec.storage.storage_class_name,
            "resources": {"requests": {"storage": spec.storage.size}},
        },
    }


def editor_env(
    owner: Owner,
    spec: env.EditEnvironmentSpec,
    queues: env.QueueUrls,
    settings: OperatorSettings,
) -> EditorEnv:
    """The WEBORDINARY_* contract for this environment's editor."""
    if not (queues.input and queues.output and queues.dlq):
        raise ValueError("the editor needs all three queue URLs")
    return EditorEnv(
        environment=owner.name,
        namespace=owner.namespace,
        client_id=spec.client_id,
        project_id=spec.project_id,
        user_id=spec.user_id,
        container_id=naming.container_id(spec.client_id, spec.project_id, spec.user_id),
        input_queue_url=queues.input,
        output_queue_url=queues.output,
        dlq_url=queues.dlq,
        workspace=WORKSPACE_MOUNT,
        repository_url=spec.repository.url,
        repository_branch=spec.repository.branch,
        idle_timeout_seconds=int(parse_duration(spec.idle_timeout).total_seconds()),
        aws_region=settings.aws_region,
        sqs_endpoint_url=settings.sqs_endpoint_url,
        push_after_edit=spec.repository.push_after_edit,
        monthly_budget_usd=spec.budget.monthly_usd,
    )


def _container_env(
    spec: env.EditEnvironmentSpec, contract: EditorEnv, settings: OperatorSettings
) -> list[dict[str, Any]]:
    variables: list[dict[str, Any]] = [
        {"name": key, "value": value} for key, value in sorted(contract.to_env().items())
    ]
    # The editor commits and pushes on SIGTERM: give it the pod's grace minus a margin for
    # the kubelet's SIGKILL, so it reports before it is killed.
    variables.append({
        "name": "WEBORDINARY_EDITOR_SHUTDOWN_GRACE_SECONDS",
        "value": str(max(settings.editor_termination_grace_seconds - 15, 10)),
    })
    # No secret here: the model key and the git token go to the credentials container only.
    variables.extend({"name": var.name, "value": var.value} for var in spec.editor.env)
    return variables


def _resources(spec: env.EditEnvironmentSpec, settings: OperatorSettings) -> dict[str, Any]:
    requests = {"cpu": settings.editor_cpu_request, "memory": settings.editor_memory_request}
    limits = {"memory": settings.editor_memory_limit}
    if spec.editor.resources is not None:
        requests.update(spec.editor.resources.requests)
        limits.update(spec.editor.resources.limits)
    return {"requests": requests, "limits": limits}


def deployment(
    owner: Owner,
    spec: env.EditEnvironmentSpec,
    queues: env.QueueUrls,
    replicas: int,
    settings: OperatorSettings,
) -> Manifest:
    """The editor: one pod at most (Recreate), restricted security context, workspace mounted."""
    if replicas not in (0, 1):
        raise ValueError(f"an editor runs 0 or 1 replicas, not {replicas}")
    contract = editor_env(owner, spec, queues, settings)
    uid = settings.editor_run_as_user
    image = spec.editor.image or settings.editor_image
    containers = [
        pod.editor_container(image=image, settings=settings,
                             env_vars=_container_env(spec, contract, settings),
                             resources=_resources(spec, settings)),
        pod.preview_container(image=image, settings=settings, allowed_hosts=pod.preview_hosts(
            owner.name, owner.namespace, preview_host(settings))),
        pod.credentials_container(image=image, settings=settings, spec=spec,
                                  environment=owner.name, repository_url=spec.repository.url),
    ]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(owner, spec, ROLE_EDITOR, "editor"),
        "spec": {
            "replicas": replicas,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector_labels(owner)},
            "template": {
                "metadata": {
                    "labels": labels(owner, spec, "editor"),
                    "annotations": {pod.SKIP_AWS_INJECTION: f"{pod.PREVIEW},{pod.CREDENTIALS}"},
                },
                "spec": {
                    "serviceAccountName": naming.child_name(owner.name, ROLE_EDITOR),
                    "automountServiceAccountToken": False,
                    "shareProcessNamespace": False,
                    "enableServiceLinks": False,
                    **placement.pod_fields(settings, {"app.kubernetes.io/name": APP_NAME,
                                                      "app.kubernetes.io/component": "editor"}),
                    "terminationGracePeriodSeconds": settings.editor_termination_grace_seconds,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": uid,
                        "runAsGroup": uid,
                        "fsGroup": uid,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    **pod.sandbox(settings),
                    "initContainers": [pod.init_container(image=image, settings=settings)],
                    "containers": containers,
                    "volumes": pod.volumes(
                        naming.child_name(owner.name, ROLE_WORKSPACE), settings),
                },
            },
        },
    }


def service(owner: Owner, spec: env.EditEnvironmentSpec) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(owner, spec, ROLE_EDITOR, "editor"),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(owner),
            "ports": [
                {"name": "preview", "port": PREVIEW_PORT, "targetPort": "preview",
                 "protocol": "TCP"},
                {"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics",
                 "protocol": "TCP"},
            ],
        },
    }


def preview_host(settings: OperatorSettings) -> str | None:
    """The public host of previews (the gateway forwards it as Host); none for local URLs."""
    host = urlparse(settings.preview_base_url).hostname
    return None if host in (None, "localhost", "127.0.0.1") else host


def preview_base(settings: OperatorSettings) -> str:
    """What status.previewBasePath shows: append `{threadId}/` for a session's preview."""
    return settings.preview_base_url.rstrip("/") + "/session/"


def network_policy(
    owner: Owner, spec: env.EditEnvironmentSpec, settings: OperatorSettings
) -> Manifest:
    """Preview traffic only from the gateway's pods, metrics only from the scrapers; egress
    only DNS and HTTPS."""
    gateway: dict[str, Any] = {"podSelector": {"matchLabels": dict(settings.gateway_pod_labels)}}
    gateway["namespaceSelector"] = {"matchLabels": {
        "kubernetes.io/metadata.name": settings.gateway_namespace,
    }} if settings.gateway_namespace else {}
    rules: list[dict[str, Any]] = [
        {"from": [gateway], "ports": [{"protocol": "TCP", "port": PREVIEW_PORT}]},
    ]
    if settings.metrics_scraper_namespace:
        rules.append({
            "from": [{"namespaceSelector": {"matchLabels": {
                "kubernetes.io/metadata.name": settings.metrics_scraper_namespace,
            }}}],
            "ports": [{"protocol": "TCP", "port": port} for port in
                      (METRICS_PORT, pod.PREVIEW_METRICS_PORT, pod.PROXY_METRICS_PORT)],
        })
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(owner, spec, ROLE_EDITOR, "editor"),
        "spec": {
            "podSelector": {"matchLabels": selector_labels(owner)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": rules,
            "egress": egress.editor_egress(settings),
        },
    }


def children(
    owner: Owner,
    spec: env.EditEnvironmentSpec,
    queues: env.QueueUrls,
    replicas: int,
    settings: OperatorSettings,
) -> list[tuple[Kind, str, Manifest | None]]:
    """Every child in apply order: (kind, name, manifest or None when it must not exist).

    The Deployment is left out until all three queue URLs are known (its env carries them).
    """
    validate_spec(spec)
    built: list[tuple[Kind, Manifest | None]] = [
        (SERVICE_ACCOUNT, service_account(owner, spec, settings)),
        (PVC, persistent_volume_claim(owner, spec, placement.access_modes(settings))),
        (NETWORK_POLICY, network_policy(owner, spec, settings)),
        (SERVICE, service(owner, spec)),
    ]
    if queues.input and queues.output and queues.dlq:
        built.append((DEPLOYMENT, deployment(owner, spec, queues, replicas, settings)))
    # Previews go through the gateway: per-environment Ingresses of earlier versions go.
    built.append((INGRESS, None))
    result: list[tuple[Kind, str, Manifest | None]] = []
    for kind, manifest in built:
        role = {PVC: ROLE_WORKSPACE, INGRESS: ROLE_PREVIEW}.get(kind, ROLE_EDITOR)
        result.append((kind, naming.child_name(owner.name, role), manifest))
    return result


def owned_view(kind: Kind, manifest: Manifest) -> Manifest:
    """The part of a child the operator owns: compared to the live object and patched.

    A PVC's spec is immutable after creation (size aside), so only its labels are owned.
    """
    meta = manifest["metadata"]
    view: Manifest = {"metadata": {
        key: meta[key] for key in ("labels", "annotations", "ownerReferences") if key in meta
    }}
    if kind != PVC and "spec" in manifest:
        view["spec"] = manifest["spec"]
    return view


def is_subset(desired: Any, observed: Any) -> bool:
    """True when every field of `desired` is present and equal in `observed`.

    Fields the API server adds (defaults, clusterIP, status) do not count as drift; lists must
    match element by element.
    """
    if isinstance(desired, dict):
        return isinstance(observed, dict) and all(
            key in observed and is_subset(value, observed[key]) for key, value in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(observed, list)
            and len(desired) == len(observed)
            and all(is_subset(d, o) for d, o in zip(desired, observed, strict=True))
        )
    return bool(desired == observed) and type(desired) is type(observed)
