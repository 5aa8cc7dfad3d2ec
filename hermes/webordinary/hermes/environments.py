"""The EditEnvironment as Hermes sees it: the object it creates, the patches it sends (pure).

Hermes writes only: the object at creation (client/project/user/repository/sessions), an
appended `spec.sessions` entry, and the wake annotation. It never writes status.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from webordinary.contracts import activity
from webordinary.contracts.environment import (
    API_VERSION,
    KIND,
    LABEL_CLIENT,
    LABEL_PROJECT,
    LABEL_USER,
    EditEnvironmentSpec,
    Phase,
)
from webordinary.contracts.naming import label_value
from webordinary.hermes.routing import Route

MAX_SESSIONS = 256


def new_environment(name: str, namespace: str, route: Route, thread_id: str) -> dict[str, Any]:
    """The object Hermes creates: only the fields it owns (SRE fields keep CRD defaults)."""
    spec = EditEnvironmentSpec(
        client_id=route.client_id,
        project_id=route.project_id,
        user_id=route.user_id,
        repository=route.repository,
        sessions=[thread_id],
    )
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                LABEL_CLIENT: label_value(route.client_id),
                LABEL_PROJECT: label_value(route.project_id),
                LABEL_USER: label_value(route.user_id),
                "app.kubernetes.io/managed-by": "webordinary-hermes",
            },
        },
        "spec": spec.model_dump(mode="json", by_alias=True, exclude_none=True,
                                include={"client_id", "project_id", "user_id", "repository",
                                         "sessions"}),
    }


def sessions_of(obj: dict[str, Any]) -> list[str]:
    return list((obj.get("spec") or {}).get("sessions") or [])


def session_patch(obj: dict[str, Any], thread_id: str) -> list[dict[str, Any]] | None:
    """JSON patch appending the thread to spec.sessions, guarded by resourceVersion.

    None when the thread is already there. A concurrent writer makes the `test` fail (409/422)
    and the caller re-reads and tries again. At the session cap the oldest session is dropped
    from the list (its branch and work stay in git; the operator only stops tracking it).
    """
    sessions = sessions_of(obj)
    if thread_id in sessions:
        return None
    version = obj["metadata"].get("resourceVersion")
    ops: list[dict[str, Any]] = []
    if version is not None:
        ops.append({"op": "test", "path": "/metadata/resourceVersion", "value": version})
    if "sessions" not in (obj.get("spec") or {}):
        ops.append({"op": "add", "path": "/spec/sessions", "value": [thread_id]})
        return ops
    if len(sessions) >= MAX_SESSIONS:
        ops.append({"op": "test", "path": "/spec/sessions/0", "value": sessions[0]})
        ops.append({"op": "remove", "path": "/spec/sessions/0"})
    ops.append({"op": "add", "path": "/spec/sessions/-", "value": thread_id})
    return ops


def phase_of(obj: dict[str, Any]) -> str | None:
    value = (obj.get("status") or {}).get("phase")
    return str(value) if value else None


def needs_wake(obj: dict[str, Any]) -> bool:
    """Ask for a wake when the operator reports the environment asleep."""
    return phase_of(obj) == Phase.SLEEPING.value


def wake_patch(now: datetime) -> dict[str, Any]:
    """Merge patch setting the wake annotation to an RFC 3339 timestamp."""
    return activity.wake_patch(now)


def queue_url(obj: dict[str, Any], role: str) -> str | None:
    """An environment's queue URL from its status (`input`, `output` or `dlq`)."""
    queues = (obj.get("status") or {}).get("queues") or {}
    value = queues.get(role)
    return str(value) if value else None


def is_terminating(obj: dict[str, Any]) -> bool:
    return bool(obj.get("metadata", {}).get("deletionTimestamp"))
