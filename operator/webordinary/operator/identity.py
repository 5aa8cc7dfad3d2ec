"""The editor's AWS identity: one EKS Pod Identity association per environment.

The association maps the environment's editor ServiceAccount (`<environment>-editor` in its
namespace) to the editor role; EKS Pod Identity then gives the editor session tags
(`kubernetes-namespace`, `kubernetes-service-account`) that the role's ABAC policy matches
against its queues' tags (helm/webordinary/iam/editor-pod-identity.json). Kubernetes cannot
delete an AWS object, so the environment's finalizer does (handlers.cleanup).

Planning is pure (`plan`, `deletable`); the adapter (adapters/eks.py) does the I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol

from webordinary.contracts import ownership
from webordinary.contracts.environment import GROUP
from webordinary.operator.failures import AwsFailure
from webordinary.operator.settings import OperatorSettings
from webordinary.operator.status import Part

TAG_NAME: Final = f"{GROUP}/name"
TAG_UID: Final = f"{GROUP}/uid"


class IdentityFailure(AwsFailure):
    """An EKS problem with a condition reason; `transient` ones are retried with backoff."""


@dataclass(frozen=True)
class Desired:
    """The association an environment needs."""

    cluster: str
    namespace: str
    service_account: str
    role_arn: str
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Association:
    """An association as EKS describes it (the parts that matter here)."""

    association_id: str
    role_arn: str
    tags: Mapping[str, str] = field(default_factory=dict)
    disable_session_tags: bool = False


@dataclass(frozen=True)
class Plan:
    action: Literal["create", "update", "keep", "conflict"]
    association_id: str | None = None
    problem: str | None = None


def desired(settings: OperatorSettings, namespace: str, name: str, uid: str) -> Desired | None:
    """The association for one environment, or None when the operator does not manage one."""
    if settings.aws_identity() != "pod-identity":
        return None
    tags = {**ownership.tags(namespace, name), TAG_NAME: name, TAG_UID: uid}
    return Desired(settings.eks_cluster_name or "", namespace,  # both set: settings check it
                   ownership.editor_service_account(name), settings.editor_role_arn or "", tags)


def ownership_problem(tags: Mapping[str, str], want: Desired) -> str | None:
    """None when the association is this environment's (same namespace and name; one left by
    an earlier environment of the same name is adopted)."""
    if (tags.get(ownership.TAG_NAMESPACE) == want.namespace
            and tags.get(TAG_NAME) == want.tags.get(TAG_NAME)):
        return None
    if not tags.get(TAG_NAME):
        return "exists without webordinary ownership tags"
    return f"belongs to {tags.get(ownership.TAG_NAMESPACE)}/{tags.get(TAG_NAME)}"


def plan(want: Desired, found: Sequence[Association]) -> Plan:
    """What to do so that exactly `want` exists: no write when it already does."""
    if not found:
        return Plan("create")
    current = found[0]  # EKS keeps at most one per namespace + service account
    problem = ownership_problem(current.tags, want)
    if problem is not None and not current.tags and current.role_arn == want.role_arn and (
            not current.disable_session_tags):
        # Made by hand for this ServiceAccount with the editor role (the install step before
        # the operator made them): used as it is; never deleted, being untagged.
        return Plan("keep", current.association_id)
    if problem is not None:
        return Plan("conflict", current.association_id,
                    f"association {current.association_id} for {want.namespace}/"
                    f"{want.service_account} {problem}; delete it, or tag it "
                    f"{ownership.TAG_NAMESPACE}={want.namespace} "
                    f"{TAG_NAME}={want.tags.get(TAG_NAME)}")
    if current.role_arn != want.role_arn or current.disable_session_tags:
        return Plan("update", current.association_id)
    return Plan("keep", current.association_id)


def deletable(want: Desired, found: Sequence[Association]) -> list[str]:
    """The associations an environment's deletion removes: only its own."""
    return [a.association_id for a in found if ownership_problem(a.tags, want) is None]


class Port(Protocol):
    """What the reconcile needs of EKS (adapters/eks.py over boto3)."""

    async def find(self, cluster: str, namespace: str, service_account: str
                   ) -> list[Association]: ...

    async def create(self, desired: Desired) -> Association: ...

    async def update(self, desired: Desired, association_id: str) -> Association: ...

    async def delete(self, cluster: str, association_id: str) -> bool: ...


@dataclass(frozen=True)
class Result:
    """IdentityReady as a part, and what was written (for Events)."""

    part: Part
    action: str = "keep"
    association_id: str | None = None
    failure: IdentityFailure | None = None


def unmanaged(settings: OperatorSettings, namespace: str, name: str) -> Part:
    """IdentityReady when the operator does not create associations."""
    if settings.aws_identity() == "irsa":
        return Part(True, "Irsa", f"role {settings.role_arn(namespace, name)} (IRSA annotation)")
    return Part(True, "NotManaged", "AWS identity not managed (editor_aws_identity none)")


async def ensure(eks: Port, want: Desired) -> Result:
    """Observe (list + describe), plan, and write only when needed: an unchanged environment
    costs two reads and no write."""
    try:
        found = await eks.find(want.cluster, want.namespace, want.service_account)
        step = plan(want, found)
        if step.action == "conflict":
            return Result(Part(False, "AssociationConflict", step.problem or "", permanent=True),
                          "conflict", step.association_id)
        if step.action == "create":
            made = await eks.create(want)
            step = Plan("create", made.association_id)
        elif step.action == "update":
            assert step.association_id is not None
            await eks.update(want, step.association_id)
    except IdentityFailure as failure:
        return Result(Part(False, failure.reason, str(failure), permanent=not failure.transient),
                      "failed", failure=failure)
    return Result(Part(True, "Associated",
                       f"EKS Pod Identity association {step.association_id}: "
                       f"{want.namespace}/{want.service_account} -> {want.role_arn}"),
                  step.action, step.association_id)


async def remove(eks: Port, want: Desired) -> list[str]:
    """Delete the environment's own associations (a foreign one is left alone)."""
    found = await eks.find(want.cluster, want.namespace, want.service_account)
    deleted = []
    for association_id in deletable(want, found):
        if await eks.delete(want.cluster, association_id):
            deleted.append(association_id)
    return deleted
