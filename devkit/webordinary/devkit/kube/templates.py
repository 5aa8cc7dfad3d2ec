"""Settled pod templates: a workload's pod template that a write sends again unchanged is not
defaulted, pruned and validated again.

A write of a workload (Deployment, ReplicaSet, StatefulSet, DaemonSet, Job) runs its pod
template through defaulting, pruning and validation, each a function of the template alone
(the checks that also read other fields, such as the selector against the template's labels,
still run). The store remembers, per object, a digest of the template its last write sent and
the template that came out of those steps; a later write that sends a template with the same
digest gets that result as it is: the same the steps would give again, and it passed their
checks. Most writes of a workload send back the template they read (a scale, a label, an
annotation): a Deployment's pod template is most of it, and processing it again was most of
the emulator's CPU for a scale-up.

The digest is of the pickled template, which (unlike `==`) tells `1` from `1.0` and `True`, as
validation does.
"""

from __future__ import annotations

import hashlib
import pickle
from typing import Any

from webordinary.devkit.kube.resources import Resource

WORKLOADS = frozenset({"deployments", "replicasets", "statefulsets", "daemonsets", "jobs"})

Slot = tuple[Any, ...]


def _template(obj: dict[str, Any]) -> dict[str, Any] | None:
    spec = obj.get("spec")
    template = spec.get("template") if isinstance(spec, dict) else None
    return template if isinstance(template, dict) else None


class SettledTemplates:
    """Per object: the digest of the pod template a write sent, and what it became."""

    def __init__(self) -> None:
        self._slots: dict[Slot, tuple[bytes, dict[str, Any]]] = {}

    @staticmethod
    def digest(resource: Resource, obj: dict[str, Any]) -> bytes | None:
        """The digest of a workload's pod template as sent (None: no template to settle)."""
        if resource.custom or resource.plural not in WORKLOADS:
            return None
        template = _template(obj)
        if template is None:
            return None
        return hashlib.blake2b(pickle.dumps(template, pickle.HIGHEST_PROTOCOL),
                               digest_size=16).digest()

    def settle(self, slot: Slot, digest: bytes | None, obj: dict[str, Any]
               ) -> dict[str, Any] | None:
        """Put the settled template in place of the sent one when the digests match; returns
        it (the steps must leave it as it is: it may be shared with stored versions)."""
        found = self._slots.get(slot)
        if digest is None or found is None or found[0] != digest:
            return None
        obj["spec"]["template"] = found[1]
        return found[1]

    def remember(self, slot: Slot, digest: bytes | None, obj: dict[str, Any]) -> None:
        """The template of `obj` is what the sent one (`digest`) became, and it passed."""
        template = _template(obj)
        if digest is not None and template is not None:
            self._slots[slot] = (digest, template)

    def forget(self, slot: Slot) -> None:
        self._slots.pop(slot, None)
