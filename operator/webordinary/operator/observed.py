"""What the operator's watches last showed of each environment's Deployment, PVC and editor
pods, so that a lifecycle reconcile (a wake, a sleep deadline, a child's status) needs no
reads: at a thousand simultaneous wakes, every GET is a request the API server serves.

Only the fields status and the lifecycle decision use are kept (small at 5,000 environments).
A watch is eventually consistent; the lifecycle reconcile only sets spec.replicas (idempotent)
and observes status, and each child's next event triggers another look.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Slim = dict[str, Any]

_META = ("name", "namespace", "uid", "generation", "resourceVersion", "labels", "annotations",
         "ownerReferences", "deletionTimestamp")
# Kinds whose metadata.generation counts every spec change (the API server bumps it; status
# writes do not): their version is that and the metadata the operator sets.
_GENERATION_KINDS = frozenset({"Deployment"})
# Kinds whose status the cluster writes (a PVC is bound by the volume controller) and whose
# only owned part is metadata (a PVC's spec is immutable after creation, size aside, and not
# patched: builders.owned_view): their version is that metadata.
_METADATA_KINDS = frozenset({"PersistentVolumeClaim"})
# Annotation domains reserved for Kubernetes' own components (`pv.kubernetes.io/bind-completed`
# when a claim binds, `deployment.kubernetes.io/revision`): never set by the operator, so never
# drift of what it owns.
_SYSTEM_DOMAINS = ("kubernetes.io", "k8s.io")


def slim(body: Mapping[str, Any]) -> Slim:
    """metadata (identity, generation, labels, owners), spec.replicas and status."""
    meta = body.get("metadata") or {}
    kept: Slim = {"metadata": {k: meta[k] for k in _META if k in meta},
                  "status": body.get("status") or {}}
    replicas = (body.get("spec") or {}).get("replicas")
    if replicas is not None:
        kept["spec"] = {"replicas": replicas}
    return kept


def _older(body: Mapping[str, Any], kept: Slim | None) -> bool:
    """Whether `body` is an older version than `kept`: a watch event still in the operator's
    queue after a full reconcile read the object fresh. Without this, a lifecycle reconcile
    went back in time (a workspace Bound, then Pending from the late event: Ready -> Starting
    -> Ready, two status writes and two Events; 40 % of environments in a loaded burst).
    resourceVersions are compared as numbers when both are (etcd revisions); otherwise the
    latest arrival wins, as before."""
    if kept is None:
        return False
    new = str((body.get("metadata") or {}).get("resourceVersion") or "")
    old = str((kept.get("metadata") or {}).get("resourceVersion") or "")
    return new.isdigit() and old.isdigit() and int(new) < int(old)


def child_version(kind: str, body: Mapping[str, Any]) -> str:
    """What says a child may have drifted since a full reconcile found it in sync: its
    resourceVersion; for a Deployment its generation and the metadata the operator sets; for a
    PVC that metadata alone. A Deployment's status changes with every wake and sleep (the
    controller's replica counts) and a PVC's when it binds: that is no drift, and a drift tick
    after each would re-read every child of the environment (at a thousand environments
    falling asleep, most of the idle operator's CPU for the next drift interval; after a
    creation burst, every environment's first tick)."""
    meta = body.get("metadata") or {}
    if kind in _METADATA_KINDS:
        return repr(_owned_metadata(meta))
    if kind not in _GENERATION_KINDS or meta.get("generation") is None:
        return str(meta.get("resourceVersion") or "")
    return repr((meta["generation"], *_owned_metadata(meta)))


def _owned_metadata(meta: Mapping[str, Any]) -> tuple[Any, ...]:
    """The uid (a child deleted and made again by someone else is another child) and what
    the operator sets of the metadata."""
    annotations = meta.get("annotations") or {}
    return (meta.get("uid") or "", sorted((meta.get("labels") or {}).items()),
            sorted((key, value) for key, value in annotations.items()
                   if not _system_annotation(key)),
            meta.get("ownerReferences") or [])


def _system_annotation(key: str) -> bool:
    domain = key.partition("/")[0] if "/" in key else ""
    return any(domain == d or domain.endswith("." + d) for d in _SYSTEM_DOMAINS)


class Observed:
    """Latest slim Deployments and PVCs by (namespace, name); editor pods by (namespace,
    instance label) then pod name."""

    def __init__(self) -> None:
        self._objects: dict[tuple[str, str, str], Slim] = {}
        self._pods: dict[tuple[str, str], dict[str, Slim]] = {}

    def seen(self, kind: str, body: Mapping[str, Any], deleted: bool = False) -> None:
        meta = body.get("metadata") or {}
        namespace, name = meta.get("namespace") or "", meta.get("name") or ""
        if kind == "Pod":
            instance = (meta.get("labels") or {}).get("app.kubernetes.io/instance") or ""
            pods = self._pods.setdefault((namespace, instance), {})
            if deleted:
                pods.pop(name, None)
                if not pods:
                    self._pods.pop((namespace, instance), None)
            else:
                pods[name] = slim(body)
            return
        if deleted:
            self._objects.pop((kind, namespace, name), None)
        elif not _older(body, self._objects.get((kind, namespace, name))):
            self._objects[(kind, namespace, name)] = slim(body)

    def wrote(self, kind: str, body: Mapping[str, Any]) -> None:
        """Our own write's answer, or a full reconcile's fresh read (its watch event follows
        and says the same, or something older that `seen` then ignores)."""
        self.seen(kind, body)

    def get(self, kind: str, namespace: str, name: str) -> Slim | None:
        return self._objects.get((kind, namespace, name))

    def has(self, kind: str, namespace: str, name: str) -> bool:
        return (kind, namespace, name) in self._objects

    def pods(self, namespace: str, instance: str) -> list[Slim]:
        return list(self._pods.get((namespace, instance), {}).values())
