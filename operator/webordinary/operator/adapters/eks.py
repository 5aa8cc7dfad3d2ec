"""EKS Pod Identity associations for the operator: find, create, update, delete.

boto3 is synchronous; every call runs on a small thread pool so the event loop never blocks.
"""

from __future__ import annotations

from typing import Any, Final, TypeVar

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from webordinary.operator.adapters.aws import BotoAdapter, client_config
from webordinary.operator.identity import Association, Desired, IdentityFailure
from webordinary.operator.settings import OperatorSettings

T = TypeVar("T")

THROTTLED: Final = {"Throttling", "ThrottlingException", "TooManyRequestsException",
                    "RequestLimitExceeded"}


def classify(error: Exception, action: str) -> IdentityFailure:
    """A botocore error as a condition reason; throttling, 5xx and the network are transient."""
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        message = str(error.response.get("Error", {}).get("Message", ""))
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        text = f"{action}: {code}: {message}"
        if code in THROTTLED:
            return IdentityFailure("AWSThrottled", text, transient=True)
        if status >= 500 or code == "ServerException":
            return IdentityFailure("AWSUnavailable", text, transient=True)
        if code in ("AccessDeniedException", "AccessDenied", "UnauthorizedOperation"):
            return IdentityFailure("AccessDenied", text, transient=False)
        if code == "ResourceNotFoundException" and "cluster" in message.lower():
            return IdentityFailure("ClusterNotFound", text, transient=False)
        if code == "ResourceNotFoundException":  # the association went while we looked
            return IdentityFailure("AssociationRace", text, transient=True, delay=1.0)
        if code == "ResourceInUseException":  # created by someone else meanwhile
            return IdentityFailure("AssociationRace", text, transient=True, delay=1.0)
        if code == "InvalidParameterException" and "role" in message.lower() and (
                "not exist" in message.lower() or "not found" in message.lower()):
            return IdentityFailure("RoleNotFound", text, transient=False)
        if code == "InvalidParameterException":
            return IdentityFailure("InvalidParameter", text, transient=False)
        if code == "ResourceLimitExceededException":
            return IdentityFailure("LimitExceeded", text, transient=False)
        return IdentityFailure("AWSError", text, transient=False)
    if isinstance(error, BotoCoreError):
        return IdentityFailure("AWSUnreachable", f"{action}: {error}", transient=True)
    raise error


class EksAdapter(BotoAdapter):
    """The operator's EKS client (thread-safe boto3 client, bounded worker pool)."""

    def __init__(self, settings: OperatorSettings) -> None:
        session = boto3.session.Session()
        client = session.client("eks", region_name=settings.aws_region,
                                endpoint_url=settings.eks_endpoint_url,
                                config=client_config(settings))
        super().__init__(session, client, settings, classify)

    async def find(self, cluster: str, namespace: str, service_account: str
                   ) -> list[Association]:
        return await self._run(self.find_sync, cluster, namespace, service_account)

    def find_sync(self, cluster: str, namespace: str, service_account: str
                  ) -> list[Association]:
        """The associations of one ServiceAccount (EKS allows one), in full."""
        found: list[Association] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"clusterName": cluster, "namespace": namespace,
                                      "serviceAccount": service_account}
            if token:
                kwargs["nextToken"] = token
            page = self._call("ListPodIdentityAssociations", **kwargs)
            for summary in page.get("associations", []):
                full = self._call("DescribePodIdentityAssociation", clusterName=cluster,
                                  associationId=summary["associationId"])["association"]
                found.append(_association(full))
            token = page.get("nextToken")
            if not token:
                return found

    async def create(self, desired: Desired) -> Association:
        return await self._run(self.create_sync, desired)

    def create_sync(self, desired: Desired) -> Association:
        created = self._call(
            "CreatePodIdentityAssociation", clusterName=desired.cluster,
            namespace=desired.namespace, serviceAccount=desired.service_account,
            roleArn=desired.role_arn, tags=dict(desired.tags), disableSessionTags=False)
        return _association(created["association"])

    async def update(self, desired: Desired, association_id: str) -> Association:
        return await self._run(self.update_sync, desired, association_id)

    def update_sync(self, desired: Desired, association_id: str) -> Association:
        updated = self._call(
            "UpdatePodIdentityAssociation", clusterName=desired.cluster,
            associationId=association_id, roleArn=desired.role_arn, disableSessionTags=False)
        return _association(updated["association"])

    async def delete(self, cluster: str, association_id: str) -> bool:
        return await self._run(self.delete_sync, cluster, association_id)

    def delete_sync(self, cluster: str, association_id: str) -> bool:
        """Delete one association; False when it was already gone."""
        try:
            self._call("DeletePodIdentityAssociation", clusterName=cluster,
                       associationId=association_id)
        except IdentityFailure as failure:
            if failure.reason == "AssociationRace":
                return False
            raise
        return True


def _association(raw: dict[str, Any]) -> Association:
    return Association(
        association_id=str(raw["associationId"]),
        role_arn=str(raw.get("roleArn") or ""),
        tags={str(k): str(v) for k, v in (raw.get("tags") or {}).items()},
        disable_session_tags=bool(raw.get("disableSessionTags", False)),
    )

