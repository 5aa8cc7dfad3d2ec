"""The routing table: thread id -> environment -> editor backend, fed by watch events (pure).

Nothing here does I/O: the watcher hands in EditEnvironment and EndpointSlice objects, requests
ask `resolve()`. Only the few fields routing needs are kept (slots, tuples), so 5,000
environments with 3 sessions each cost a few MiB, not the size of the objects.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from webordinary.contracts import environment as env
from webordinary.contracts.naming import child_name, is_thread_id

EDITOR_ROLE: Final = "editor"
PREVIEW_PORT_NAME: Final = "preview"
SERVICE_NAME_LABEL: Final = "kubernetes.io/service-name"
# EndpointSlices inherit the editor Service's labels: watch only those.
EDITOR_SLICE_SELECTOR: Final = "app.kubernetes.io/name=webordinary-editor"

Key = tuple[str, str]  # (namespace, name)


def parse_time(value: object) -> float | None:
    """An RFC 3339 annotation as Unix seconds; None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.timestamp() if parsed.tzinfo is not None else None


@dataclass(slots=True)
class Environment:
    """What the gateway needs to know about one EditEnvironment."""

    namespace: str
    name: str
    service: str
    sessions: tuple[str, ...]
    phase: str | None
    suspended: bool
    deleting: bool
    message: str | None
    wake_requested: float | None
    activity: float | None

    @property
    def key(self) -> Key:
        return (self.namespace, self.name)


@dataclass(frozen=True, slots=True)
class Backend:
    host: str
    port: int

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def environment_from(obj: Mapping[str, Any]) -> Environment | None:
    """The routing view of an EditEnvironment; None for objects that cannot be routed."""
    meta = obj.get("metadata") or {}
    namespace, name = meta.get("namespace"), meta.get("name")
    if not isinstance(namespace, str) or not isinstance(name, str):
        return None
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    annotations = meta.get("annotations") or {}
    raw_sessions = spec.get("sessions") or []
    sessions = tuple(s for s in raw_sessions if isinstance(s, str) and is_thread_id(s))
    try:
        service = child_name(name, EDITOR_ROLE)
    except ValueError:
        return None
    return Environment(
        namespace=namespace,
        name=name,
        service=service,
        sessions=sessions,
        phase=status.get("phase") if isinstance(status.get("phase"), str) else None,
        suspended=spec.get("suspend") is True,
        deleting=bool(meta.get("deletionTimestamp")),
        message=status.get("message") if isinstance(status.get("message"), str) else None,
        wake_requested=parse_time(annotations.get(env.ANNOTATION_WAKE)),
        activity=parse_time(annotations.get(env.ANNOTATION_ACTIVITY)),
    )


def slice_from(obj: Mapping[str, Any]) -> tuple[Key, Key, tuple[Backend, ...]] | None:
    """(slice key, service key, ready preview backends) of an EndpointSlice."""
    meta = obj.get("metadata") or {}
    namespace, name = meta.get("namespace"), meta.get("name")
    service = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    if not isinstance(namespace, str) or not isinstance(name, str) or not service:
        return None
    port = next((p.get("port") for p in obj.get("ports") or []
                 if p.get("name") == PREVIEW_PORT_NAME and isinstance(p.get("port"), int)), None)
    backends: list[Backend] = []
    if port is not None:
        for endpoint in obj.get("endpoints") or []:
            conditions = endpoint.get("conditions") or {}
            # A missing `ready` means ready (the API's own convention); terminating pods are not.
            if conditions.get("ready") is False or conditions.get("terminating") is True:
                continue
            backends.extend(Backend(address, port) for address in endpoint.get("addresses") or [])
    return (namespace, name), (namespace, service), tuple(backends)


@dataclass(frozen=True, slots=True)
class Serve:
    environment: Environment
    backend: Backend


@dataclass(frozen=True, slots=True)
class Starting:
    """No editor is serving yet: wake it (the waker decides whether a write is due)."""

    environment: Environment


@dataclass(frozen=True, slots=True)
class Failed:
    environment: Environment


@dataclass(frozen=True, slots=True)
class Suspended:
    environment: Environment


@dataclass(frozen=True, slots=True)
class Unknown:
    reason: str


Resolution = Serve | Starting | Failed | Suspended | Unknown


class RouteTable:
    """Threads, environments and ready backends, updated in place by watch events."""

    def __init__(self) -> None:
        self.environments: dict[Key, Environment] = {}
        self.threads: dict[str, Key] = {}
        self.conflicts: dict[str, set[Key]] = {}  # a thread two environments claim
        self._slices: dict[Key, tuple[Key, tuple[Backend, ...]]] = {}
        self._by_service: dict[Key, set[Key]] = {}
        self.backends: dict[Key, Backend] = {}
        self.synced_at: float | None = None  # monotonic time of the last event or bookmark

    # -- environments -------------------------------------------------------------------------
    def upsert_environment(self, obj: Mapping[str, Any]) -> None:
        new = environment_from(obj)
        if new is None:
            return
        old = self.environments.get(new.key)
        if old is not None and old.sessions != new.sessions:
            self._unlink(old.key, set(old.sessions) - set(new.sessions))
        self.environments[new.key] = new
        for thread in new.sessions if old is None else set(new.sessions) - set(old.sessions):
            self._link(thread, new.key)
        self.touch()

    def delete_environment(self, obj: Mapping[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        key = (str(meta.get("namespace")), str(meta.get("name")))
        old = self.environments.pop(key, None)
        if old is not None:
            self._unlink(key, set(old.sessions))
        self.touch()

    def replace_environments(self, items: Iterable[Mapping[str, Any]],
                             namespace: str | None = None) -> None:
        """A fresh list (start, or a watch that expired): what is not in it is gone."""
        seen: set[Key] = set()
        for obj in items:
            self.upsert_environment(obj)
            meta = obj.get("metadata") or {}
            seen.add((str(meta.get("namespace")), str(meta.get("name"))))
        for key in [k for k in self.environments if k not in seen
                    and (namespace is None or k[0] == namespace)]:
            self.delete_environment({"metadata": {"namespace": key[0], "name": key[1]}})

    def _link(self, thread: str, key: Key) -> None:
        claimants = self.conflicts.get(thread)
        if claimants is not None:
            claimants.add(key)
            return
        current = self.threads.get(thread)
        if current is None:
            self.threads[thread] = key
        elif current != key:
            self.conflicts[thread] = {self.threads.pop(thread), key}

    def _unlink(self, key: Key, threads: Iterable[str]) -> None:
        for thread in threads:
            claimants = self.conflicts.get(thread)
            if claimants is not None:
                claimants.discard(key)
                if len(claimants) == 1:
                    self.threads[thread] = claimants.pop()
                    del self.conflicts[thread]
            elif self.threads.get(thread) == key:
                del self.threads[thread]

    # -- endpoint slices ----------------------------------------------------------------------
    def upsert_slice(self, obj: Mapping[str, Any]) -> None:
        parsed = slice_from(obj)
        if parsed is None:
            return
        slice_key, service, backends = parsed
        old = self._slices.get(slice_key)
        self._slices[slice_key] = (service, backends)
        if old is not None and old[0] != service:
            self._by_service.get(old[0], set()).discard(slice_key)
            self._recompute(old[0])
        self._by_service.setdefault(service, set()).add(slice_key)
        self._recompute(service)
        self.touch()

    def delete_slice(self, obj: Mapping[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        old = self._slices.pop((str(meta.get("namespace")), str(meta.get("name"))), None)
        if old is not None:
            self._by_service.get(old[0], set()).discard(
                (str(meta.get("namespace")), str(meta.get("name"))))
            self._recompute(old[0])
        self.touch()

    def replace_slices(self, items: Iterable[Mapping[str, Any]],
                       namespace: str | None = None) -> None:
        seen: set[Key] = set()
        for obj in items:
            self.upsert_slice(obj)
            meta = obj.get("metadata") or {}
            seen.add((str(meta.get("namespace")), str(meta.get("name"))))
        for key in [k for k in self._slices if k not in seen
                    and (namespace is None or k[0] == namespace)]:
            self.delete_slice({"metadata": {"namespace": key[0], "name": key[1]}})

    def _recompute(self, service: Key) -> None:
        """The service's backend: the first ready address over its slices (sorted by name)."""
        for slice_key in sorted(self._by_service.get(service, ())):
            backends = self._slices[slice_key][1]
            if backends:
                self.backends[service] = backends[0]
                return
        self.backends.pop(service, None)
        if not self._by_service.get(service):
            self._by_service.pop(service, None)

    # -- lookups ------------------------------------------------------------------------------
    def touch(self, now: float | None = None) -> None:
        self.synced_at = time.monotonic() if now is None else now

    def resolve(self, thread_id: str) -> Resolution:
        key = self.threads.get(thread_id)
        if key is None:
            if thread_id in self.conflicts:
                # Two environments claim one thread: never guess which tenant's site to show.
                return Unknown("this address belongs to more than one project")
            return Unknown("no session with this address")
        environment = self.environments[key]
        if environment.deleting:
            return Unknown("this session has ended")
        backend = self.backends.get((environment.namespace, environment.service))
        if backend is not None:
            return Serve(environment, backend)
        if environment.suspended:
            return Suspended(environment)
        if environment.phase == env.Phase.FAILED:
            return Failed(environment)
        return Starting(environment)

    @property
    def size(self) -> int:
        return len(self.threads)
