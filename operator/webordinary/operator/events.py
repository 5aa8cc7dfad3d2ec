"""The operator's own Kubernetes Events (Woke, Slept, phase changes), posted as kopf posts
them (same fields, `source.component` kopf) but over the operator's lean client: at a
thousand wakes or sleeps, kopf's poster was an eighth of the operator's CPU."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from webordinary.operator.adapters.kube import KubeClient, KubeError
from webordinary.operator.builders import Kind

EVENT: Final = Kind("v1", "Event", "events")
COMPONENT: Final = "kopf"  # kopf's posting defaults: what `kubectl describe` shows as From
INSTANCE: Final = "dev"
NAME_PREFIX: Final = "kopf-event-"
MAX_MESSAGE: Final = 1000

log = logging.getLogger(__name__)


def event_body(obj: Mapping[str, Any], type: str, reason: str, message: str,
               now: datetime) -> dict[str, Any]:
    """A core/v1 Event about `obj`, as kopf's post_event builds it."""
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace") or "default"
    stamp = now.isoformat()
    return {
        "metadata": {"namespace": namespace, "generateName": NAME_PREFIX},
        "action": "Action?", "type": type, "reason": reason, "message": message[:MAX_MESSAGE],
        "reportingComponent": COMPONENT, "reportingInstance": INSTANCE,
        "source": {"component": COMPONENT},
        "involvedObject": {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"),
                           "name": meta.get("name"), "uid": meta.get("uid"),
                           "namespace": namespace},
        "firstTimestamp": stamp, "lastTimestamp": stamp, "eventTime": stamp,
    }


async def post(kube: KubeClient, obj: Mapping[str, Any], type: str, reason: str,
               message: str) -> None:
    """Post one Event; a failure is logged, never raised (an Event is information)."""
    body = event_body(obj, type, reason, message, datetime.now(UTC))
    try:
        await kube.create(EVENT, body["metadata"]["namespace"], body)
    except KubeError as error:
        log.warning("event %s for %s/%s not posted: %s", reason,
                    body["involvedObject"]["namespace"], body["involvedObject"]["name"], error)
