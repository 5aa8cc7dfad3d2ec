"""The newest version of each EditEnvironment the operator has seen: from its watch (every event
kopf delivers), the answers to its own status writes, and its own reads.

A refresh after a child's status change (a workspace bound, an editor available) read the
environment from the API server, twice when a reconcile of it was running: about three GETs
per environment in a creation burst, where each one's answer was already in hand (usually the
status the create handler had just written). An informer-style cache answers instead; it is
never older than the operator's own last status write, which is what such a refresh must not
miss (an older status looks unreconciled). Whatever it lacks of other writers' changes (a wake
stamp, a spec change) reaches the operator as a watch event of its own, which runs its own
reconcile.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Key = tuple[str, str]  # (namespace, name)


def _version(body: Mapping[str, Any]) -> int | None:
    """The resourceVersion as a number (etcd revisions are), None when it is not one."""
    version = str((body.get("metadata") or {}).get("resourceVersion") or "")
    return int(version) if version.isdigit() else None


class Latest:
    """Bodies by (namespace, name); an older version never replaces a newer one (compared as
    numbers when both resourceVersions are; otherwise the latest arrival wins)."""

    def __init__(self) -> None:
        self._bodies: dict[Key, Mapping[str, Any]] = {}

    def seen(self, body: Mapping[str, Any]) -> None:
        """A version of an environment (a watch event's object, a write's answer, a read)."""
        meta = body.get("metadata") or {}
        if not meta.get("name"):
            return
        key = (meta.get("namespace") or "", meta["name"])
        kept = self._bodies.get(key)
        if kept is not None:  # revisions are global: a recreated object's order too
            new, old = _version(body), _version(kept)
            if new is not None and old is not None and new < old:
                return
        self._bodies[key] = body

    def get(self, key: Key) -> Mapping[str, Any] | None:
        return self._bodies.get(key)

    def forget(self, key: Key) -> None:
        self._bodies.pop(key, None)

    def __len__(self) -> int:
        return len(self._bodies)
