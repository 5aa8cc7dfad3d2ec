"""The one Kubernetes API client of the operator, Hermes and the gateway (aiohttp, no models).

`Config` says where the API server is and how to authenticate (in-cluster service account,
kubeconfig, an explicit URL); `Client` gets, lists, creates, patches, deletes and watches;
`KubeError` is every failure. docs/design.md says why this is not kubernetes-asyncio.
"""

from webordinary.kube.client import JSON_PATCH, MERGE_PATCH, Client, Resource, resource_path
from webordinary.kube.config import Config
from webordinary.kube.errors import Conflict, KubeError

__all__ = [
    "JSON_PATCH",
    "MERGE_PATCH",
    "Client",
    "Config",
    "Conflict",
    "KubeError",
    "Resource",
    "resource_path",
]
