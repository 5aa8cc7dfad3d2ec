"""EditEnvironments through the shared Kubernetes client (`webordinary.kube`), behind the
`EnvironmentApi` port the service is written against (its unit tests use a fake)."""

from __future__ import annotations

from typing import Any, Final, Protocol

from webordinary.contracts.environment import API_VERSION, KIND, PLURAL
from webordinary.kube import Client, Config, Resource

EDIT_ENVIRONMENT: Final = Resource(API_VERSION, KIND, PLURAL)
# Hermes lists every environment every few seconds: small pages let the event loop run mail in
# between.
LIST_PAGE: Final = 200
TIMEOUT_SECONDS: Final = 15.0


class EnvironmentApi(Protocol):
    """The few calls Hermes makes on EditEnvironments."""

    async def get(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    async def create(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]: ...

    async def json_patch(
        self, namespace: str, name: str, ops: list[dict[str, Any]]
    ) -> dict[str, Any]: ...

    async def merge_patch(
        self, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]: ...

    async def list(self, namespace: str) -> list[dict[str, Any]]: ...

    async def close(self) -> None: ...


class KubeEnvironments:
    """`EnvironmentApi` over the shared client (errors: `webordinary.kube.KubeError`)."""

    def __init__(self, client: Client, page: int = LIST_PAGE) -> None:
        self.client = client
        self.page = page

    @classmethod
    def from_settings(cls, url: str | None, token: str | None = None) -> KubeEnvironments:
        """Explicit URL (local runs), else the in-cluster service account (token re-read
        after every rotation)."""
        try:
            config = Config.from_url(url, token) if url else Config.in_cluster()
        except RuntimeError:
            raise RuntimeError(
                "no Kubernetes API: set WEBORDINARY_HERMES_KUBE_API_URL or run in a cluster"
            ) from None
        return cls(Client(config, timeout=TIMEOUT_SECONDS))

    async def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self.client.get(EDIT_ENVIRONMENT, namespace, name)

    async def create(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self.client.create(EDIT_ENVIRONMENT, namespace, body)

    async def json_patch(
        self, namespace: str, name: str, ops: list[dict[str, Any]]
    ) -> dict[str, Any]:
        return await self.client.json_patch(EDIT_ENVIRONMENT, namespace, name, ops)

    async def merge_patch(
        self, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        return await self.client.patch(EDIT_ENVIRONMENT, namespace, name, patch)

    async def list(self, namespace: str) -> list[dict[str, Any]]:
        return await self.client.list(EDIT_ENVIRONMENT, namespace, page=self.page)

    async def close(self) -> None:
        await self.client.close()
