"""Tags that say which environment an AWS resource belongs to (queues, stored attachments).

IAM matches them against the editor's EKS Pod Identity session tags (`kubernetes-namespace`,
`kubernetes-service-account`), so an editor reaches only its own environment's resources
(helm/webordinary/iam/editor-pod-identity.json).
"""

from __future__ import annotations

from typing import Final

from webordinary.contracts.environment import GROUP
from webordinary.contracts.naming import child_name

TAG_NAMESPACE: Final = f"{GROUP}/namespace"
TAG_SERVICE_ACCOUNT: Final = f"{GROUP}/service-account"
EDITOR_ROLE: Final = "editor"  # the editor's ServiceAccount is child_name(environment, "editor")


def editor_service_account(environment: str) -> str:
    return child_name(environment, EDITOR_ROLE)


def tags(namespace: str, environment: str) -> dict[str, str]:
    """What identifies an environment's resources to IAM."""
    return {TAG_NAMESPACE: namespace, TAG_SERVICE_ACCOUNT: editor_service_account(environment)}
