"""Every operator knob in one place, read from WEBORDINARY_OPERATOR_* environment variables."""

from __future__ import annotations

import ipaddress
import json
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from webordinary.contracts.specpolicy import parse_quantity


class OperatorSettings(BaseSettings):
    """Settings of one operator process (the Helm chart sets them as env vars)."""

    model_config = SettingsConfigDict(
        env_prefix="WEBORDINARY_OPERATOR_", extra="forbid", frozen=True,
        env_parse_none_str="null",
    )

    # Empty: every namespace (kopf -A); otherwise a comma-separated list.
    namespaces: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Set only for local runs against the emulator: http://127.0.0.1:PORT, no TLS, dummy token.
    kube_api_url: str | None = None

    aws_region: str = "us-east-1"
    sqs_endpoint_url: str | None = None
    aws_max_attempts: Annotated[int, Field(ge=1, le=20)] = 5
    aws_concurrency: Annotated[int, Field(ge=1, le=256)] = 16
    # With this many environments creating queues at once (in flight, or begun in the last
    # 10 s), one shared ListQueues replaces a GetQueueUrl per queue (0: never).
    sqs_burst_threshold: Annotated[int, Field(ge=0)] = 8

    # Editor egress (see egress.py): DNS only to the cluster DNS; HTTPS to these CIDRs minus
    # the metadata range and the cluster's pod/service ranges unless named here.
    cluster_dns_namespace: str = "kube-system"
    cluster_dns_pod_labels: dict[str, str] = Field(default_factory=lambda: {"k8s-app": "kube-dns"})
    # NodeLocal DNSCache and the like (e.g. 169.254.20.10/32): allowed on port 53 only.
    cluster_dns_cidrs: Annotated[list[str], NoDecode] = Field(default_factory=list)
    cluster_pod_cidrs: Annotated[list[str], NoDecode] = Field(default_factory=list)
    cluster_service_cidrs: Annotated[list[str], NoDecode] = Field(default_factory=list)
    editor_egress_https_cidrs: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["0.0.0.0/0", "::/0"])
    # A VPC interface endpoint of SQS (its subnets): allowed even inside the pod range.
    sqs_endpoint_cidrs: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Editors get AWS credentials from the EKS Pod Identity agent (169.254.170.23:80).
    eks_pod_identity_agent: bool = True
    # Further NetworkPolicyEgressRules as JSON (the gateway, an egress proxy).
    editor_egress_extra_rules: Annotated[list[dict[str, Any]], NoDecode] = Field(
        default_factory=list)

    @field_validator("editor_egress_extra_rules", mode="before")
    @classmethod
    def _json_rules(cls, value: object) -> object:
        # A JSON list; an empty variable means none (as for the CIDR lists), not a crash.
        if isinstance(value, str):
            return json.loads(value) if value.strip() else []
        return value

    @field_validator("cluster_dns_cidrs", "cluster_pod_cidrs", "cluster_service_cidrs",
                     "editor_egress_https_cidrs", "sqs_endpoint_cidrs", "editor_allowed_images",
                     mode="before")
    @classmethod
    def _split_cidrs(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("cluster_dns_cidrs", "cluster_pod_cidrs", "cluster_service_cidrs",
                     "editor_egress_https_cidrs", "sqs_endpoint_cidrs")
    @classmethod
    def _valid_cidrs(cls, value: list[str]) -> list[str]:
        for cidr in value:
            ipaddress.ip_network(cidr, strict=False)
        return value

    @field_validator("editor_max_resources")
    @classmethod
    def _valid_caps(cls, value: dict[str, str]) -> dict[str, str]:
        for quantity in value.values():
            parse_quantity(quantity)
        return value

    editor_image: str = "ghcr.io/webordinary/editor:latest"
    # What an environment's spec.editor may ask for (contracts.specpolicy; the chart's admission
    # policy enforces the same): images besides editor_image (`prefix*` allowed), and caps.
    editor_allowed_images: Annotated[list[str], NoDecode] = Field(default_factory=list)
    editor_max_resources: dict[str, str] = Field(default_factory=lambda: {
        "cpu": "4", "memory": "8Gi", "ephemeral-storage": "20Gi"})
    editor_image_pull_policy: str = "IfNotPresent"
    editor_cpu_request: str = "250m"
    editor_memory_request: str = "1Gi"
    editor_memory_limit: str = "3Gi"
    editor_termination_grace_seconds: Annotated[int, Field(ge=30)] = 120
    editor_run_as_user: int = 1000
    # The preview (customer code) and credential proxy containers' uids; None: editor's + 1/+2.
    preview_run_as_user: int | None = None
    credentials_run_as_user: int | None = None
    preview_cpu_request: str = "250m"
    preview_memory_request: str = "768Mi"
    preview_memory_limit: str = "2Gi"
    preview_max_active: Annotated[int, Field(ge=1)] = 2
    credentials_memory_request: str = "48Mi"
    credentials_memory_limit: str = "128Mi"
    editor_ephemeral_storage_request: str = "256Mi"
    editor_ephemeral_storage_limit: str = "2Gi"
    preview_ephemeral_storage_request: str = "256Mi"
    preview_ephemeral_storage_limit: str = "2Gi"
    editor_tmp_size_limit: str = "1Gi"
    preview_tmp_size_limit: str = "1Gi"
    # Sandboxed runtime for every editor pod (e.g. gvisor, kata) and its scheduling, as JSON.
    editor_runtime_class_name: str | None = None
    editor_node_selector: dict[str, str] = Field(default_factory=dict)
    editor_tolerations: list[dict[str, Any]] = Field(default_factory=list)
    # The only model API the credential proxy forwards to.
    anthropic_api_base_url: str = "https://api.anthropic.com"
    # How editors get AWS credentials (identity.py): "pod-identity": one EKS Pod Identity
    # association per environment (its editor ServiceAccount -> editor_role_arn in cluster
    # eks_cluster_name), created and deleted by the operator; "irsa": the role named by
    # editor_role_arn_template on each editor ServiceAccount; "none": not managed (local runs).
    # Unset: "irsa" when a template is given, else "none".
    editor_aws_identity: Literal["pod-identity", "irsa", "none"] | None = None
    eks_cluster_name: str | None = None
    editor_role_arn: str | None = None
    # The EKS API for the associations (the devkit stand-in locally); None: AWS's endpoint.
    eks_endpoint_url: str | None = None
    # ARN template for the editor ServiceAccount's IRSA annotation: {namespace}, {name}.
    editor_role_arn_template: str | None = None
    anthropic_secret_name: str | None = None
    anthropic_secret_key: str = "api-key"
    git_token_secret_key: str = "token"

    preview_base_url: str = "http://localhost"
    # Who may reach the editors' preview port: the gateway's pods (the one front door for
    # previews). Namespace None: pods with these labels in any namespace.
    gateway_namespace: str | None = None
    gateway_pod_labels: dict[str, str] = Field(default_factory=lambda: {
        "app.kubernetes.io/component": "gateway", "app.kubernetes.io/part-of": "webordinary",
    })
    metrics_scraper_namespace: str | None = None

    # Drift detection (and the safety net of sleep and wake): one timer per environment. A tick
    # right after another reconcile of the same environment is skipped; a tick costs ~1 SQS and
    # ~6 API reads. Wake and sleep do not wait for it (see below).
    drift_interval_seconds: Annotated[float, Field(gt=0)] = 300.0
    # First tick after an environment is seen; None: one interval (create/resume just ran).
    drift_initial_delay_seconds: Annotated[float, Field(ge=0)] | None = None
    # editor_aws_identity pod-identity: no watch covers an EKS association, so a tick of an
    # otherwise unchanged environment re-reads it (2 EKS reads, and the children) only when the
    # last check that found it in sync is this old; None: six drift intervals (30 min).
    identity_check_interval_seconds: Annotated[float, Field(gt=0)] | None = None
    # Sleep and wake. Each awake environment has a timer at last activity + idleTimeout; each
    # sleeping one's input queue is looked at once per wake_poll_interval (one SQS call).
    wake_poll_interval_seconds: Annotated[float, Field(gt=0)] = 60.0
    # An editor not available this long after a wake is stuck (WorkloadReady False, Failed).
    start_timeout_seconds: Annotated[float, Field(gt=0)] = 600.0
    # A workspace PVC Pending this long is a failure (StorageReady False, BindTimeout).
    storage_bind_timeout_seconds: Annotated[float, Field(gt=0)] = 300.0
    # Finalizer: bounded fast retries, then Degraded + Event and slow retries until released.
    cleanup_max_retries: Annotated[int, Field(ge=0)] = 5
    cleanup_slow_retry_seconds: Annotated[float, Field(gt=0)] = 300.0
    retry_base_delay_seconds: Annotated[float, Field(gt=0)] = 2.0
    retry_max_delay_seconds: Annotated[float, Field(gt=0)] = 60.0

    metrics_port: Annotated[int, Field(ge=0, le=65535)] | None = 8080
    metrics_host: str = "0.0.0.0"
    # kopf's liveness probe: http://{metrics_host}:{liveness_port}/healthz (None: off; 0: a
    # free port, as tests and `./dev up` use).
    liveness_port: Annotated[int, Field(ge=0, le=65535)] | None = 8081
    log_level: str = "INFO"
    # While SIGUSR1 has turned stall reports on: log each event-loop stall longer than this,
    # with its garbage collections and the stacks the loop was in (looplag.py).
    loop_stall_report_ms: Annotated[float, Field(gt=0)] = 50.0
    # json: one JSON object per line (log pipelines); text: for people.
    log_format: Literal["text", "json"] = "text"
    # High availability: kopf peering under this name (replicas > 1: one active, the others
    # paused until its peering record expires); None: standalone, a single replica.
    peering_name: str | None = None
    # How long a peering record lives without renewal: a crashed active operator is replaced
    # by a standby within this time (a gracefully stopped one at once).
    peering_lifetime_seconds: Annotated[int, Field(ge=5, le=3600)] = 30

    # Workspace volumes: ReadWriteMany (EFS) or ReadWriteOnce (kind's local-path, EBS); an
    # editor is one pod at most (Recreate), so one volume never has two writers either way.
    workspace_access_mode: Literal["ReadWriteMany", "ReadWriteOnce"] = "ReadWriteMany"
    # Editors' placement (placement.py; nodeSelector and tolerations above, pod.sandbox).
    editor_priority_class_name: str | None = None
    editor_topology_spread_constraints: list[dict[str, Any]] = Field(default_factory=list)

    @field_validator("namespaces", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _identity_complete(self) -> OperatorSettings:
        mode = self.aws_identity()
        if mode == "pod-identity" and not (self.eks_cluster_name and self.editor_role_arn):
            raise ValueError("editor_aws_identity pod-identity needs eks_cluster_name and "
                             "editor_role_arn")
        if mode == "pod-identity" and self.editor_role_arn_template:
            raise ValueError("editor_role_arn_template is for editor_aws_identity irsa; "
                             "pod-identity uses editor_role_arn")
        if mode == "irsa" and not self.editor_role_arn_template:
            raise ValueError("editor_aws_identity irsa needs editor_role_arn_template")
        return self

    def aws_identity(self) -> Literal["pod-identity", "irsa", "none"]:
        """The editors' AWS identity mode (see editor_aws_identity)."""
        if self.editor_aws_identity is not None:
            return self.editor_aws_identity
        return "irsa" if self.editor_role_arn_template else "none"

    def watch_namespaces(self) -> list[str]:
        """kopf's namespace arguments: empty means cluster-wide."""
        return list(self.namespaces)

    def drift_initial_delay(self) -> float:
        if self.drift_initial_delay_seconds is None:
            return self.drift_interval_seconds
        return self.drift_initial_delay_seconds

    def identity_check_interval(self) -> float:
        if self.identity_check_interval_seconds is None:
            return 6 * self.drift_interval_seconds
        return self.identity_check_interval_seconds

    def liveness_endpoint(self) -> str | None:
        if self.liveness_port is None:
            return None
        return f"http://{self.metrics_host}:{self.liveness_port}/healthz"

    def role_arn(self, namespace: str, name: str) -> str | None:
        """The IRSA role for one environment's editor, or None when IRSA is not used."""
        if self.aws_identity() != "irsa" or not self.editor_role_arn_template:
            return None
        return self.editor_role_arn_template.format(
            namespace=namespace, name=name, environment=name
        )
