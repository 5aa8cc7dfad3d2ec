"""The EditEnvironment custom resource: spec (Hermes + SREs write) and status (operator writes)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Final, Literal

from pydantic import Field, field_validator

from webordinary.contracts.base import WireModel
from webordinary.contracts.duration import DURATION_PATTERN, parse_duration
from webordinary.contracts.naming import THREAD_ID_RE

GROUP: Final = "webordinary.dev"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
KIND: Final = "EditEnvironment"
PLURAL: Final = "editenvironments"
SINGULAR: Final = "editenvironment"
SHORT_NAMES: Final = ("ee", "editenv")
CATEGORIES: Final = ("webordinary",)

# Annotations: requests from other writers that must not bump metadata.generation.
# Wake and activity: see contracts.activity for the patches and the rate limiter writers use.
ANNOTATION_WAKE: Final = f"{GROUP}/wake-requested-at"  # Hermes, gateway, SREs: RFC 3339 time
ANNOTATION_ACTIVITY: Final = f"{GROUP}/last-activity"  # Hermes, gateway: RFC 3339 time of use
ANNOTATION_RELEASE_FINALIZER: Final = f"{GROUP}/release-finalizer"  # SRE: "true" to let go
FINALIZER: Final = f"{GROUP}/cleanup"

# Labels on every child; values pass through naming.label_value().
LABEL_CLIENT: Final = f"{GROUP}/client"
LABEL_PROJECT: Final = f"{GROUP}/project"
LABEL_USER: Final = f"{GROUP}/user"
LABEL_ENVIRONMENT: Final = f"{GROUP}/environment"

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$"
QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"


class DeletionPolicy(StrEnum):
    RETAIN = "Retain"
    DELETE = "Delete"


class Phase(StrEnum):
    PENDING = "Pending"
    PROVISIONING = "Provisioning"
    STARTING = "Starting"  # woken (replicas 1), the editor not available yet
    READY = "Ready"
    SLEEPING = "Sleeping"
    FAILED = "Failed"
    TERMINATING = "Terminating"


class ConditionType(StrEnum):
    QUEUES_READY = "QueuesReady"
    IDENTITY_READY = "IdentityReady"  # the editor's AWS identity (EKS Pod Identity association)
    STORAGE_READY = "StorageReady"
    WORKLOAD_READY = "WorkloadReady"
    ROUTING_READY = "RoutingReady"
    READY = "Ready"
    DEGRADED = "Degraded"


class SecretKeyRef(WireModel):
    name: Annotated[str, Field(min_length=1, max_length=253)]
    key: str | None = None


class Repository(WireModel):
    url: Annotated[str, Field(min_length=1, max_length=2048)]
    branch: Annotated[str, Field(min_length=1, max_length=255)] = "main"
    credentials_secret_ref: SecretKeyRef | None = None
    # The editor pushes the session branch after every completed edit (else only on stop and
    # on an explicit push command).
    push_after_edit: bool = True


class Storage(WireModel):
    storage_class_name: Annotated[str, Field(min_length=1, max_length=253)] = "efs-sc"
    size: Annotated[str, Field(pattern=QUANTITY_PATTERN)] = "5Gi"
    deletion_policy: DeletionPolicy = DeletionPolicy.RETAIN


class Budget(WireModel):
    """Spending limits; the editor refuses new edits once a calendar month's cost reached one."""

    monthly_usd: Annotated[float, Field(ge=0)] | None = None


class EnvVar(WireModel):
    name: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=253)]
    value: str = ""


class Resources(WireModel):
    requests: dict[str, Annotated[str, Field(pattern=QUANTITY_PATTERN)]] = Field(
        default_factory=dict
    )
    limits: dict[str, Annotated[str, Field(pattern=QUANTITY_PATTERN)]] = Field(
        default_factory=dict
    )


class EditorOverrides(WireModel):
    image: Annotated[str, Field(min_length=1, max_length=512)] | None = None
    resources: Resources | None = None
    env: list[EnvVar] = Field(default_factory=list)


class Queues(WireModel):
    visibility_timeout: Annotated[int, Field(ge=0, le=43200)] = 300
    message_retention: Annotated[int, Field(ge=60, le=1209600)] = 345600
    max_receive_count: Annotated[int, Field(ge=1, le=1000)] = 3
    deletion_policy: DeletionPolicy = DeletionPolicy.DELETE


ThreadId = Annotated[str, Field(pattern=THREAD_ID_RE.pattern, max_length=40)]


class EditEnvironmentSpec(WireModel):
    """What an environment should be. client/project/user are immutable (CEL in the CRD)."""

    client_id: Annotated[str, Field(pattern=ID_PATTERN)]
    project_id: Annotated[str, Field(pattern=ID_PATTERN)]
    user_id: Annotated[str, Field(pattern=ID_PATTERN)]
    repository: Repository
    sessions: list[ThreadId] = Field(default_factory=list, max_length=256)
    idle_timeout: Annotated[str, Field(pattern=DURATION_PATTERN)] = "20m"
    suspend: bool = False
    storage: Storage = Field(default_factory=Storage)
    editor: EditorOverrides = Field(default_factory=EditorOverrides)
    queues: Queues = Field(default_factory=Queues)
    budget: Budget = Field(default_factory=Budget)

    @field_validator("idle_timeout")
    @classmethod
    def _positive_timeout(cls, value: str) -> str:
        if parse_duration(value).total_seconds() <= 0:
            raise ValueError("idleTimeout must be longer than 0s")
        return value

    @field_validator("sessions")
    @classmethod
    def _unique_sessions(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("sessions must not repeat a threadId")
        return value


class Condition(WireModel):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: Annotated[str, Field(pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")]
    message: str = ""
    last_transition_time: datetime
    observed_generation: int | None = None


class QueueUrls(WireModel):
    input: str | None = None
    output: str | None = None
    dlq: str | None = None


class EditEnvironmentStatus(WireModel):
    """What the operator observed. Only the operator writes it."""

    phase: Phase = Phase.PENDING
    conditions: list[Condition] = Field(default_factory=list)
    observed_generation: int | None = None
    queues: QueueUrls = Field(default_factory=QueueUrls)
    container_id: str | None = None
    preview_base_path: str | None = None
    session_count: int = 0
    replicas: int = 0
    last_activity: datetime | None = None
    message: str | None = None
