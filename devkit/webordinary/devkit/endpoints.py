"""The EndpointSlice controller's part for local runs: editor Services -> local pod ports.

On a cluster the control plane keeps one EndpointSlice per Service: the Service's labels, its
ports resolved to the pod's container ports, and each pod's address with its readiness. The
gateway routes by these. Locally a "pod" is a process on 127.0.0.1 with its own ports, so the
slice carries those; everything else is what the real controller writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

SERVICE_NAME_LABEL: Final = "kubernetes.io/service-name"
MANAGED_BY_LABEL: Final = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY: Final = "webordinary-devkit-kubelet"


def slice_name(service: str) -> str:
    return f"{service}-local"


def endpoint_slice(
    service: Mapping[str, Any], ports: Mapping[str, int] | None, ready: bool
) -> dict[str, Any]:
    """The slice of `service`; `ports` maps its targetPort names (or numbers) to the pod's
    local ports, None when no pod runs (then the slice has no endpoints)."""
    meta = service["metadata"]
    slice_ports: list[dict[str, Any]] = []
    for port in service.get("spec", {}).get("ports", []):
        target = str(port.get("targetPort", port["port"]))
        local = None if ports is None else ports.get(target)
        slice_ports.append({"name": port.get("name", ""), "protocol": port.get("protocol", "TCP"),
                            **({"port": local} if local is not None else {})})
    endpoints = [] if ports is None else [{
        "addresses": ["127.0.0.1"],
        "conditions": {"ready": ready, "serving": ready, "terminating": False},
    }]
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": slice_name(meta["name"]),
            "namespace": meta["namespace"],
            "labels": {**(meta.get("labels") or {}), SERVICE_NAME_LABEL: meta["name"],
                       MANAGED_BY_LABEL: MANAGED_BY},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": meta["name"],
                                 "uid": meta["uid"], "controller": True,
                                 "blockOwnerDeletion": True}],
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": slice_ports,
    }


def differs(desired: Mapping[str, Any], live: Mapping[str, Any] | None) -> bool:
    if live is None:
        return True
    return any(desired[key] != live.get(key) for key in ("endpoints", "ports")) or (
        desired["metadata"]["labels"] != live.get("metadata", {}).get("labels"))
