"""The API's state and write semantics: resourceVersions, generations, status separation,
finalizers, garbage collection, namespaces, watch event fan-out. No HTTP here.

Everything runs on one event loop and no method awaits while changing state, so every
write is atomic without locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import random
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from webordinary.devkit.kube import errors
from webordinary.devkit.kube.admission import AdmissionChain
from webordinary.devkit.kube.admission import Request as AdmissionRequest
from webordinary.devkit.kube.data import clone, dumps
from webordinary.devkit.kube.defaults import apply_builtin_defaults
from webordinary.devkit.kube.errors import ApiError
from webordinary.devkit.kube.omitempty import drop_empty_builtin, drop_empty_builtin_status
from webordinary.devkit.kube.patches import apply_json_patch, apply_merge_patch, strategic_merge
from webordinary.devkit.kube.resources import BUILTINS, Resource, resources_from_crd
from webordinary.devkit.kube.selectors import (
    FieldRequirement,
    Requirement,
    fields_match,
    labels_match,
)
from webordinary.devkit.kube.templates import SettledTemplates
from webordinary.devkit.kube.validation import (
    CustomSchema,
    builtin_patch_meta,
    builtin_update_causes,
    metadata_causes,
    validate_builtin,
    validate_builtin_status,
)

log = logging.getLogger(__name__)

StorageKey = tuple[str, str]  # (group, plural)
ObjectKey = tuple[str, str]  # (namespace or "", name)
Obj = dict[str, Any]
# What a write's body may share nested objects and lists with: "caller" (it may change them
# later: copied deeply), "stored" (a patch's result shares unchanged parts with the stored
# object, which is never changed in place), "nothing" (decoded from the request).
Shares = Literal["caller", "stored", "nothing"]

HISTORY_LIMIT = 200_000
# etcd is compacted every 5 minutes by default: older resourceVersions are gone (410)
HISTORY_SECONDS = 300.0
# Events past the window freed per write (a write adds one: a backlog drains within a few
# dozen writes, ~1 ms of freeing each)
EXPIRE_PER_WRITE = 32
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
SYSTEM_USER = "system:apiserver"
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


_stamp: list[Any] = [0, ""]


def now_rfc3339() -> str:
    """The current time as the API writes it (second precision), formatted once a second."""
    second = int(time.time())
    if _stamp[0] != second:
        moment = datetime.datetime.fromtimestamp(second, datetime.UTC)
        _stamp[:] = [second, moment.strftime("%Y-%m-%dT%H:%M:%SZ")]
    return str(_stamp[1])


def new_uid() -> str:
    """A random (version 4) UUID without a system call per object."""
    return str(uuid.UUID(int=random.getrandbits(128), version=4))


@dataclass
class Event:
    """One change, kept for watch fan-out and for resuming watches from a resourceVersion."""

    rv: int
    type: str
    obj: Obj
    old: Obj | None = None
    at: float = field(default_factory=time.monotonic)
    _lines: dict[tuple[str, str], bytes] = field(default_factory=dict)

    def encoded(self, api_version: str | None = None) -> bytes:
        """The object as JSON (with `api_version`, or its own), serialised once per apiVersion:
        the same bytes make the write's answer and every watch line of it."""
        obj = self.obj
        own = obj.get("apiVersion")
        # keyed by the apiVersion written: the answer (its own) and a watch of the same
        # version (named) share one serialisation
        key = ("", api_version if api_version and api_version != own else str(own))
        cached = self._lines.get(key)
        if cached is None:
            if api_version and own != api_version:
                obj = {**obj, "apiVersion": api_version}
            cached = dumps(obj)
            self._lines[key] = cached
        return cached

    def line(self, kind: str, api_version: str) -> bytes:
        """The event as one JSON line, serialised once per (type, apiVersion)."""
        key = (kind, api_version)
        cached = self._lines.get(key)
        if cached is None:
            cached = b'{"type":%s,"object":%s}\n' % (json.dumps(kind).encode(),
                                                      self.encoded(api_version))
            self._lines[key] = cached
        return cached


@dataclass(eq=False)
class Watcher:
    """A live watch stream's filter and inbox."""

    resource: Resource
    namespace: str | None
    name: str | None
    labels: list[Requirement]
    fields: list[FieldRequirement]
    queue: asyncio.Queue[tuple[str, Event] | None] = field(default_factory=asyncio.Queue)

    def matches(self, obj: Obj | None) -> bool:
        if obj is None:
            return False
        meta = obj.get("metadata", {})
        if self.namespace is not None and meta.get("namespace") != self.namespace:
            return False
        if self.name is not None and meta.get("name") != self.name:
            return False
        return labels_match(self.labels, meta.get("labels")) and fields_match(self.fields, obj)


@dataclass
class DeleteOptions:
    propagation: str = "Background"
    uid: str | None = None
    resource_version: str | None = None


class Store:
    """Objects of every served resource plus the API server's write rules."""

    def __init__(self, history_seconds: float = HISTORY_SECONDS) -> None:
        self.resources: dict[tuple[str, str, str], Resource] = {}
        self.schemas: dict[tuple[str, str, str], CustomSchema] = {}
        self.objects: dict[StorageKey, dict[ObjectKey, Obj]] = {}
        self.uids: dict[str, tuple[StorageKey, ObjectKey]] = {}
        self.dependents: dict[str, set[tuple[StorageKey, ObjectKey]]] = {}
        self.history: dict[StorageKey, deque[Event]] = {}
        self.history_floor: dict[StorageKey, int] = {}
        self.watchers: dict[StorageKey, set[Watcher]] = {}
        self.rv = 0
        self.history_limit = HISTORY_LIMIT
        self.history_seconds = history_seconds
        self.gone_count = 0  # watches refused with 410 Gone (history expired)
        self.closing = False
        self.counts: Counter[str] = Counter()
        self.writes: Counter[str] = Counter()
        self.reads: Counter[str] = Counter()  # "GET pods", "LIST pods", ...
        self.counts_lock = threading.Lock()
        self.loop: asyncio.AbstractEventLoop | None = None
        # Who the request being served comes from (the server sets it per write): what
        # ValidatingAdmissionPolicies see as request.userInfo.username.
        self.user = SYSTEM_USER
        self.templates = SettledTemplates()
        self.admission = AdmissionChain(lambda key: self.objects.get(key, {}),
                                        self._namespace_labels)
        for resource in BUILTINS:
            self.register(resource)
        for name in SYSTEM_NAMESPACES:
            self._ensure_namespace(name)

    # -- resources -------------------------------------------------------------------------

    def register(self, resource: Resource) -> None:
        key = (resource.group, resource.version, resource.plural)
        self.resources[key] = resource
        if resource.custom:
            self.schemas[key] = CustomSchema(resource.schema)
        self.objects.setdefault(resource.storage_key, {})
        self.history.setdefault(resource.storage_key, deque())
        self.history_floor.setdefault(resource.storage_key, 0)
        self.watchers.setdefault(resource.storage_key, set())

    def unregister_crd(self, crd: Obj) -> None:
        for resource in resources_from_crd(crd):
            self.resources.pop((resource.group, resource.version, resource.plural), None)
            self.schemas.pop((resource.group, resource.version, resource.plural), None)

    def register_crd(self, crd: Obj) -> list[Resource]:
        resources = resources_from_crd(crd)
        for resource in resources:
            self.register(resource)
        return resources

    def find(self, group: str, version: str, plural: str) -> Resource | None:
        return self.resources.get((group, version, plural))

    def by_kind(self, api_version: str, kind: str) -> Resource | None:
        group, _, version = api_version.rpartition("/")
        for resource in self.resources.values():
            if resource.group == group and resource.kind == kind and (
                resource.version == version
            ):
                return resource
        for resource in self.resources.values():
            if resource.group == group and resource.kind == kind:
                return resource
        return None

    # -- counting --------------------------------------------------------------------------

    def count(self, verb: str, resource: Resource | None, subresource: str | None) -> None:
        with self.counts_lock:
            self.counts[verb] += 1
            if resource is None:
                return
            name = resource.plural + (f"/{subresource}" if subresource else "")
            if verb in ("POST", "PUT", "PATCH", "DELETE"):
                self.writes[name] += 1
            elif verb in ("GET", "LIST"):
                self.reads[f"{verb} {name}"] += 1

    # -- reading ---------------------------------------------------------------------------

    def get(self, resource: Resource, namespace: str | None, name: str) -> Obj:
        obj = self.objects[resource.storage_key].get((namespace or "", name))
        if obj is None:
            raise errors.not_found(resource.plural, resource.group, name)
        return obj

    def select(
        self,
        resource: Resource,
        namespace: str | None,
        labels: list[Requirement],
        fields: list[FieldRequirement],
    ) -> list[Obj]:
        items = self.objects[resource.storage_key]
        keys = sorted(items)
        result = []
        for key in keys:
            if namespace is not None and key[0] != namespace:
                continue
            obj = items[key]
            if labels and not labels_match(labels, obj["metadata"].get("labels")):
                continue
            if fields and not fields_match(fields, obj):
                continue
            result.append(obj)
        return result

    # -- events ----------------------------------------------------------------------------

    def _emit(self, resource: Resource, kind: str, obj: Obj, old: Obj | None = None) -> None:
        key = resource.storage_key
        event = Event(self.rv, kind, obj, old)
        history = self.history[key]
        history.append(event)
        while len(history) > self.history_limit:
            dropped = history.popleft()
            self.history_floor[key] = dropped.rv
        self._expire(key, event.at)
        for watcher in list(self.watchers[key]):
            now, before = watcher.matches(obj), watcher.matches(old)
            if kind == "MODIFIED":
                if now and before:
                    watcher.queue.put_nowait(("MODIFIED", event))
                elif now:
                    watcher.queue.put_nowait(("ADDED", event))
                elif before:
                    watcher.queue.put_nowait(("DELETED", event))
            elif now:
                watcher.queue.put_nowait((kind, event))

    def _expire(self, key: StorageKey, now: float) -> None:
        """Free up to EXPIRE_PER_WRITE events older than the history window. A real server
        compacts in the background; freeing all at once stood the emulator still (the first
        write after 5 quiet minutes freed ~5,000 events: 150 ms). Events past the window are
        forgotten whether freed yet or not (`_floor`)."""
        history = self.history[key]
        horizon = now - self.history_seconds
        for _ in range(EXPIRE_PER_WRITE):
            if not history or history[0].at >= horizon:
                break
            self.history_floor[key] = history.popleft().rv

    def _floor(self, key: StorageKey, now: float) -> int:
        """The resourceVersion up to which events are forgotten (freed or past the window)."""
        floor = self.history_floor[key]
        horizon = now - self.history_seconds
        for event in self.history[key]:
            if event.at >= horizon:
                break
            floor = event.rv
        return floor

    def subscribe(
        self, watcher: Watcher, since: int | None, initial: bool
    ) -> list[tuple[str, Event]]:
        """Register a watcher; returns what it must see first (replay or initial state).

        A watch from a resourceVersion after which events were forgotten is 410 Gone."""
        key = watcher.resource.storage_key
        backlog: list[tuple[str, Event]] = []
        floor = self._floor(key, time.monotonic())
        if since is not None and since < floor:
            self.gone_count += 1
            raise errors.gone(f"too old resource version: {since} ({floor})")
        if initial:
            for obj in self.select(watcher.resource, watcher.namespace, watcher.labels,
                                   watcher.fields):
                if watcher.name is None or obj["metadata"]["name"] == watcher.name:
                    rv = int(obj["metadata"]["resourceVersion"])
                    backlog.append(("ADDED", Event(rv, "ADDED", obj)))
        elif since is not None:
            for event in self._since(key, since):
                now, before = watcher.matches(event.obj), watcher.matches(event.old)
                if event.type == "MODIFIED":
                    if now and before:
                        backlog.append(("MODIFIED", event))
                    elif now:
                        backlog.append(("ADDED", event))
                    elif before:
                        backlog.append(("DELETED", event))
                elif now:
                    backlog.append((event.type, event))
        self.watchers[key].add(watcher)
        if self.closing:
            watcher.queue.put_nowait(None)
        return backlog

    def _since(self, key: StorageKey, since: int) -> list[Event]:
        history = self.history[key]
        newer: list[Event] = []
        for event in reversed(history):
            if event.rv <= since:
                break
            newer.append(event)
        newer.reverse()
        return newer

    def unsubscribe(self, watcher: Watcher) -> None:
        self.watchers[watcher.resource.storage_key].discard(watcher)

    def close_watchers(self) -> None:
        """End every watch stream now and any opened from here on (the server is stopping)."""
        self.closing = True
        for watchers in self.watchers.values():
            for watcher in watchers:
                watcher.queue.put_nowait(None)

    # -- writing: helpers ------------------------------------------------------------------

    def _next_rv(self) -> str:
        self.rv += 1
        return str(self.rv)

    def _index(self, resource: Resource, key: ObjectKey, obj: Obj | None, old: Obj | None) -> None:
        target = (resource.storage_key, key)
        if old is not None:
            self.uids.pop(old["metadata"].get("uid", ""), None)
            for ref in old["metadata"].get("ownerReferences") or []:
                self.dependents.get(ref.get("uid", ""), set()).discard(target)
        if obj is not None:
            self.uids[obj["metadata"]["uid"]] = target
            for ref in obj["metadata"].get("ownerReferences") or []:
                self.dependents.setdefault(ref.get("uid", ""), set()).add(target)

    def _check_body_identity(self, resource: Resource, body: Any, deep: bool = True) -> Obj:
        """The body as this write's own object: a deep copy (the steps after change nested
        parts in place), or with `deep=False` a copy of the top level and the metadata alone
        (see `Shares`)."""
        if not isinstance(body, dict):
            raise errors.bad_request("the body of the request must be a JSON object")
        kind = body.get("kind")
        api_version = body.get("apiVersion")
        if resource.custom and (not kind or not api_version):
            raise errors.bad_request(f"Object 'Kind' is missing in '{json.dumps(body)[:200]}'")
        if kind and kind != resource.kind:
            raise errors.bad_request(
                f"the kind in the data ({kind}) does not match the expected kind "
                f"({resource.kind})")
        if api_version and api_version != resource.api_version:
            group = api_version.rpartition("/")[0]
            if not (resource.custom and group == resource.group and self.find(
                    group, api_version.rpartition("/")[2], resource.plural)):
                raise errors.bad_request(
                    f"the API version in the data ({api_version}) does not match the expected "
                    f"API version ({resource.api_version})")
        obj = clone(body) if deep else dict(body)
        obj["kind"] = resource.kind
        obj["apiVersion"] = resource.api_version
        meta = obj.get("metadata")
        if meta is None:
            obj["metadata"] = meta = {}
        elif not deep and isinstance(meta, dict):
            obj["metadata"] = meta = dict(meta)
        if not isinstance(meta, dict):
            raise errors.bad_request("metadata must be an object")
        return obj

    def _fix_namespace(self, resource: Resource, obj: Obj, namespace: str | None) -> str:
        meta = obj["metadata"]
        if not resource.namespaced:
            meta.pop("namespace", None)
            return ""
        body_ns = meta.get("namespace")
        if namespace is None:
            raise errors.method_not_allowed(
                f"{resource.plural} is namespaced: use /namespaces/{{namespace}}/"
                f"{resource.plural}")
        if body_ns and body_ns != namespace:
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on "
                "the request")
        meta["namespace"] = namespace
        return namespace

    def _validate(self, resource: Resource, obj: Obj, old: Obj | None,
                  strict_fields: bool, *, status_only: bool = False,
                  settled: Obj | None = None) -> list[str]:
        """Normalise and validate in place; 422 with every cause; returns warnings.
        `status_only`: a built-in's `/status` write, whose spec and metadata are as stored.
        `settled`: the object's pod template when it is a settled one (templates.py)."""
        warnings: list[str] = []
        name = obj["metadata"].get("name", "")
        if status_only and not resource.custom:
            drop_empty_builtin_status(resource.api_version, resource.kind, obj)
            causes = validate_builtin_status(resource, obj)
        elif resource.custom:
            schema = self.schemas[(resource.group, resource.version, resource.plural)]
            normalised, pruned = schema.normalise(obj)
            if pruned and strict_fields:
                raise errors.bad_request(
                    "strict decoding error: " + ", ".join(f'unknown field "{p}"' for p in pruned))
            warnings += [f'unknown field "{p}"' for p in pruned]
            obj.clear()
            obj.update(normalised)
            causes = metadata_causes(resource, obj) + schema.causes(obj, old)
        else:
            drop_empty_builtin(resource.api_version, resource.kind, obj, settled)
            causes = validate_builtin(resource, obj, settled)
            if old is not None and not causes:
                causes += builtin_update_causes(resource, old, obj)
        if resource.plural == "customresourcedefinitions" and not causes:
            causes += _crd_causes(obj)
        if causes:
            raise errors.invalid(resource.kind, resource.group, name, causes)
        return warnings

    @staticmethod
    def _spec_changed(resource: Resource, old: Obj, new: Obj) -> bool:
        skip = {"metadata", "status", "apiVersion", "kind"} if (
            resource.status or not resource.custom) else {"metadata", "apiVersion", "kind"}
        return {k: v for k, v in old.items() if k not in skip} != {
            k: v for k, v in new.items() if k not in skip
        }

    def _ensure_namespace(self, name: str) -> None:
        namespaces = self.find("", "v1", "namespaces")
        assert namespaces is not None
        if ("", name) in self.objects[namespaces.storage_key]:
            return
        obj: Obj = {
            "kind": "Namespace", "apiVersion": "v1",
            "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
            "spec": {"finalizers": ["kubernetes"]},
        }
        self._finish_create(namespaces, "", obj)

    def _finish_create(self, resource: Resource, namespace: str, obj: Obj) -> Obj:
        meta = obj["metadata"]
        meta["uid"] = new_uid()
        meta["creationTimestamp"] = now_rfc3339()
        meta["generation"] = 1
        meta["resourceVersion"] = self._next_rv()
        if resource.plural == "namespaces":
            obj["status"] = {"phase": "Active"}
            spec = obj.setdefault("spec", {})
            if not spec.get("finalizers"):
                spec["finalizers"] = ["kubernetes"]
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
        key = (namespace, meta["name"])
        self.objects[resource.storage_key][key] = obj
        self._index(resource, key, obj, None)
        self._emit(resource, "ADDED", obj)
        return obj

    # -- validating admission ---------------------------------------------------------------

    @contextlib.contextmanager
    def acting_as(self, user: str) -> Iterator[None]:
        """Serve one (synchronous) write on behalf of `user`."""
        self.user = user
        try:
            yield
        finally:
            self.user = SYSTEM_USER

    def _namespace_labels(self, namespace: str) -> dict[str, str]:
        ns = self.objects.get(("", "namespaces"), {}).get(("", namespace))
        return dict((ns or {}).get("metadata", {}).get("labels") or {})

    def _admit(self, operation: str, resource: Resource, namespace: str | None,
               obj: Obj | None, old: Obj | None, subresource: str | None = None) -> None:
        """ValidatingAdmissionPolicies, after defaulting and schema validation (as a real
        server orders them); a denial answers like the API server's admission error."""
        denial = self.admission.check(AdmissionRequest(
            operation, self.user, obj, old, subresource or "", namespace or "",
            resource.group, resource.version, resource.plural))
        if denial is None:
            return
        name = ((obj or old or {}).get("metadata") or {}).get("name", "")
        what = "forbidden" if denial.code == 403 else "invalid"
        raise ApiError(denial.code, denial.reason,
                       f'{resource.qualified} "{name}" is {what}: ValidatingAdmissionPolicy '
                       f"'{denial.policy}' with binding '{denial.binding}' denied request: "
                       f"{denial.message}")

    # -- writing: verbs --------------------------------------------------------------------

    def create(
        self,
        resource: Resource,
        namespace: str | None,
        body: Any,
        *,
        dry_run: bool = False,
        strict_fields: bool = False,
        shares: Shares = "caller",
    ) -> tuple[Obj, list[str]]:
        obj = self._check_body_identity(resource, body, deep=shares == "caller")
        namespace = self._fix_namespace(resource, obj, namespace)
        meta = obj["metadata"]
        if meta.get("resourceVersion"):
            raise errors.bad_request("resourceVersion should not be set on objects to be created")
        if namespace:
            ns = self.objects[("", "namespaces")].get(("", namespace))
            if ns is None:
                raise errors.not_found("namespaces", "", namespace)
            if ns["metadata"].get("deletionTimestamp"):
                raise ApiError(403, "Forbidden",
                               f'{resource.qualified} "{meta.get("name") or ""}" is forbidden: '
                               f"unable to create new content in namespace {namespace} "
                               "because it is being terminated")
        items = self.objects[resource.storage_key]
        if not meta.get("name"):
            prefix = meta.get("generateName")
            if not prefix:
                raise errors.invalid(resource.kind, resource.group, "",
                                     [("metadata.name",
                                       "Required value: name or generateName is required")])
            for _ in range(20):
                candidate = prefix + "".join(random.choices(_GENERATE_ALPHABET, k=5))
                if (namespace, candidate) not in items:
                    break
            meta["name"] = candidate
        for system in ("uid", "creationTimestamp", "deletionTimestamp",
                       "deletionGracePeriodSeconds", "generation", "selfLink", "managedFields"):
            meta.pop(system, None)
        if resource.status:
            obj.pop("status", None)
            if not resource.custom:
                obj["status"] = _initial_status(resource)
        digest = self.templates.digest(resource, obj)
        if not resource.custom:
            apply_builtin_defaults(resource, obj, None)
        warnings = self._validate(resource, obj, None, strict_fields)
        meta = obj["metadata"]  # validation may have replaced it (pruning)
        slot = (resource.storage_key, (namespace, meta["name"]))
        if (namespace, meta["name"]) in items:
            raise errors.already_exists(resource.plural, resource.group, meta["name"])
        if resource.plural == "customresourcedefinitions":
            self._crd_conflicts(obj)
        self._admit("CREATE", resource, namespace, obj, None)
        if dry_run:
            meta["uid"] = new_uid()
            meta["creationTimestamp"] = now_rfc3339()
            meta["generation"] = 1
            return obj, warnings
        if resource.plural == "customresourcedefinitions":
            obj["status"] = _crd_status(obj)
        created = self._finish_create(resource, namespace, obj)
        self.templates.remember(slot, digest, created)
        if resource.plural == "customresourcedefinitions":
            self.register_crd(created)
        if meta.get("ownerReferences"):
            self._later(lambda: self._collect_dangling(resource, (namespace, meta["name"])))
        return created, warnings

    def update(
        self,
        resource: Resource,
        namespace: str | None,
        name: str,
        body: Any,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        strict_fields: bool = False,
        require_rv: bool = True,
        shares: Shares = "caller",
    ) -> tuple[Obj, list[str]]:
        old = self.get(resource, namespace, name)
        # whether the body's nested parts are copied: a custom resource's normalisation builds
        # every nested object and list anew; a built-in's is pruned in place
        copied = shares == "caller" or (shares == "stored" and not resource.custom)
        # a status write keeps only the body's status
        new = self._check_body_identity(resource, body,
                                        deep=subresource != "status" and copied)
        if resource.namespaced:
            self._fix_namespace(resource, new, namespace)
        else:
            new["metadata"].pop("namespace", None)
        meta = new["metadata"]
        if meta.get("name") and meta["name"] != name:
            raise errors.bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the URL "
                f"({name})")
        meta["name"] = name
        rv = meta.get("resourceVersion")
        if rv:
            if rv != old["metadata"]["resourceVersion"]:
                raise errors.stale(resource.plural, resource.group, name)
        elif require_rv and resource.custom:
            raise errors.invalid(resource.kind, resource.group, name, [
                ("metadata.resourceVersion", "Invalid value: 0x0: must be specified for an "
                                             "update")])
        old_meta = old["metadata"]
        slot = (resource.storage_key, (namespace or "", name))
        digest, settled = None, None
        if subresource == "status":
            status = new.get("status")
            if copied:
                status = clone(status)
            # copy-on-write: stored objects are never changed in place, so the new version
            # shares all but its metadata (changed below) and status with the old one
            new = {**old, "metadata": dict(old_meta)}
            if status is None:
                new.pop("status", None)
            else:
                new["status"] = status
            meta = new["metadata"]
        else:
            for system in ("uid", "creationTimestamp", "deletionTimestamp",
                           "deletionGracePeriodSeconds", "generation"):
                if system in old_meta:
                    meta[system] = old_meta[system]
                else:
                    meta.pop(system, None)
            meta.pop("managedFields", None)
            meta.pop("selfLink", None)
            if resource.status:
                if "status" in old:
                    new["status"] = old["status"] if resource.custom else clone(old["status"])
                else:
                    new.pop("status", None)
            if old_meta.get("deletionTimestamp"):
                added = set(meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
                if added:
                    raise errors.invalid(resource.kind, resource.group, name, [
                        ("metadata.finalizers", f"Forbidden: no new finalizers can be added if "
                                                f"the object is being deleted, found new "
                                                f"finalizers {sorted(added)!r}")])
            if not resource.custom:
                digest = self.templates.digest(resource, new)
                settled = self.templates.settle(slot, digest, new)
                apply_builtin_defaults(resource, new, old, settled)
        meta["resourceVersion"] = old_meta["resourceVersion"]
        if "finalizers" in meta and not meta["finalizers"]:
            del meta["finalizers"]
        warnings = self._validate(resource, new, old, strict_fields,
                                  status_only=subresource == "status", settled=settled)
        meta = new["metadata"]  # validation may have replaced it (pruning)
        if settled is None and not dry_run:
            self.templates.remember(slot, digest, new)
        if self._spec_changed(resource, old, new):
            meta["generation"] = int(old_meta.get("generation", 1)) + 1
        self._admit("UPDATE", resource, namespace, new, old, subresource)
        if new == old or dry_run:
            return (old if new == old else new), warnings
        return self._commit_update(resource, (namespace or "", name), old, new), warnings

    def _commit_update(self, resource: Resource, key: ObjectKey, old: Obj, new: Obj) -> Obj:
        meta = new["metadata"]
        meta["resourceVersion"] = self._next_rv()
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self._remove(resource, key, new)
            return new
        self.objects[resource.storage_key][key] = new
        self._index(resource, key, new, old)
        self._emit(resource, "MODIFIED", new, old)
        if resource.plural == "customresourcedefinitions":
            self.unregister_crd(old)
            self.register_crd(new)
        if meta.get("ownerReferences") != old["metadata"].get("ownerReferences") and meta.get(
                "ownerReferences"):
            self._later(lambda: self._collect_dangling(resource, key))
        if resource.plural == "namespaces" and meta.get("deletionTimestamp"):
            self._later(lambda: self._namespace_done(key[1]))
        return new

    def patch(
        self,
        resource: Resource,
        namespace: str | None,
        name: str,
        content_type: str,
        patch: Any,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        strict_fields: bool = False,
    ) -> tuple[Obj, list[str]]:
        current = self.get(resource, namespace, name)
        if content_type == "application/json-patch+json":
            patched = apply_json_patch(current, patch)
        elif content_type == "application/merge-patch+json":
            if not isinstance(patch, dict):
                raise errors.bad_request("a merge patch must be a JSON object")
            patched = apply_merge_patch(current, patch)
        elif content_type == "application/strategic-merge-patch+json":
            if resource.custom:
                raise ApiError(415, "UnsupportedMediaType",
                               "strategic merge patch is not supported for custom resources "
                               f"({resource.qualified}): use a merge or JSON patch")
            if not isinstance(patch, dict):
                raise errors.bad_request("a strategic merge patch must be a JSON object")
            meta = builtin_patch_meta(resource.api_version, resource.kind)
            patched = strategic_merge(current, patch, meta)
        elif content_type == "application/apply-patch+yaml":
            if not isinstance(patch, dict):
                raise errors.bad_request("an apply patch must be an object")
            body = {k: v for k, v in patch.items() if k not in ("apiVersion", "kind")}
            if resource.custom:
                patched = apply_merge_patch(current, body)
            else:
                meta = builtin_patch_meta(resource.api_version, resource.kind)
                patched = strategic_merge(current, body, meta)
        else:
            raise errors.unsupported_media_type(content_type)
        if not isinstance(patched, dict):
            raise errors.bad_request("the patched document is not an object")
        patched.setdefault("metadata", {})
        if not isinstance(patched["metadata"], dict):
            raise errors.bad_request("metadata must be an object")
        if patched["metadata"].get("name", name) != name:
            raise errors.bad_request("metadata.name cannot be changed by a patch")
        # a JSON patch works on a deep copy; the other patches share unchanged parts with
        # the stored object
        return self.update(resource, namespace, name, patched, subresource=subresource,
                           dry_run=dry_run, strict_fields=strict_fields, require_rv=False,
                           shares="nothing" if content_type == "application/json-patch+json"
                           else "stored")

    def apply(
        self,
        resource: Resource,
        namespace: str | None,
        name: str,
        patch: Any,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        strict_fields: bool = False,
    ) -> tuple[Obj, list[str], bool]:
        """Server-side apply as a merge (creates when absent); no field ownership."""
        key = (namespace or "", name)
        if key not in self.objects[resource.storage_key]:
            if subresource:
                raise errors.not_found(resource.plural, resource.group, name)
            body = dict(patch) if isinstance(patch, dict) else patch
            if isinstance(body, dict):
                body.setdefault("metadata", {})
                if isinstance(body["metadata"], dict):
                    body["metadata"].setdefault("name", name)
            created, warnings = self.create(resource, namespace, body, dry_run=dry_run,
                                            strict_fields=strict_fields)
            return created, warnings, True
        obj, warnings = self.patch(resource, namespace, name, "application/apply-patch+yaml",
                                   patch, subresource=subresource, dry_run=dry_run,
                                   strict_fields=strict_fields)
        return obj, warnings, False

    def delete(
        self,
        resource: Resource,
        namespace: str | None,
        name: str,
        options: DeleteOptions | None = None,
        *,
        dry_run: bool = False,
    ) -> tuple[Obj, bool]:
        """Delete or mark for deletion; returns (object, removed now)."""
        options = options or DeleteOptions()
        key = (namespace or "", name)
        old = self.get(resource, namespace, name)
        meta = old["metadata"]
        if options.uid is not None and options.uid != meta["uid"]:
            raise errors.conflict(resource.plural, resource.group, name,
                                  f"Precondition failed: UID in precondition: {options.uid}, "
                                  f"UID in object meta: {meta['uid']}")
        if options.resource_version is not None and (
                options.resource_version != meta["resourceVersion"]):
            raise errors.conflict(resource.plural, resource.group, name,
                                  "Precondition failed: ResourceVersion in precondition: "
                                  f"{options.resource_version}, ResourceVersion in object meta: "
                                  f"{meta['resourceVersion']}")
        if resource.plural == "namespaces" and name in SYSTEM_NAMESPACES[:3]:
            raise ApiError(403, "Forbidden", f'namespaces "{name}" is forbidden: this namespace '
                                             "may not be deleted")
        if meta.get("deletionTimestamp"):
            return old, False
        self._admit("DELETE", resource, namespace, None, old)
        if options.propagation == "Orphan" and not dry_run:
            self._orphan(meta["uid"])
        finalizers = list(meta.get("finalizers") or [])
        if options.propagation == "Foreground" and self.dependents.get(meta["uid"]):
            finalizers.append("foregroundDeletion")
        namespace_pending = resource.plural == "namespaces"
        if not finalizers and not namespace_pending:
            if dry_run:
                return old, True
            gone = clone(old)
            gone["metadata"]["resourceVersion"] = self._next_rv()
            self._remove(resource, key, gone)
            return gone, True
        new = clone(old)
        new_meta = new["metadata"]
        new_meta["deletionTimestamp"] = now_rfc3339()
        new_meta["deletionGracePeriodSeconds"] = 0
        if finalizers:
            new_meta["finalizers"] = finalizers
        if new_meta.get("generation"):
            new_meta["generation"] = int(new_meta["generation"]) + 1
        if namespace_pending:
            new["status"] = {"phase": "Terminating"}
        if dry_run:
            return new, False
        new_meta["resourceVersion"] = self._next_rv()
        self.objects[resource.storage_key][key] = new
        self._index(resource, key, new, old)
        self._emit(resource, "MODIFIED", new, old)
        if "foregroundDeletion" in finalizers:
            self._later(lambda: self._foreground(resource, key))
        if namespace_pending:
            self._later(lambda: self._sweep_namespace(name))
        return new, False

    def _remove(self, resource: Resource, key: ObjectKey, final: Obj) -> None:
        old = self.objects[resource.storage_key].pop(key)
        self.templates.forget((resource.storage_key, key))
        self._index(resource, key, None, old)
        self._emit(resource, "DELETED", final, old)
        if resource.plural == "customresourcedefinitions":
            self._drop_custom_objects(old)
        uid = old["metadata"]["uid"]
        if self.dependents.get(uid):
            self._later(lambda: self._collect(uid))
        if key[0]:
            self._later(lambda: self._namespace_done(key[0]))

    def _drop_custom_objects(self, crd: Obj) -> None:
        """A CRD is gone: so are its objects (DELETED events), then the resource itself."""
        served = resources_from_crd(crd)
        if served:
            resource = self.find(served[0].group, served[0].version, served[0].plural)
            if resource is not None:
                items = self.objects[resource.storage_key]
                for key in sorted(items):
                    final = clone(items[key])
                    final["metadata"]["resourceVersion"] = self._next_rv()
                    self._remove(resource, key, final)
        self.unregister_crd(crd)

    # -- garbage collection ----------------------------------------------------------------

    def _later(self, action: Callable[[], None]) -> None:
        """Run after the current request, as the real controllers do (asynchronously)."""
        def run() -> None:
            try:
                action()
            except ApiError as exc:
                log.debug("background action: %s", exc.message)
            except Exception:
                log.exception("background action failed")

        if self.loop is not None:
            self.loop.call_soon(run)
        else:
            run()

    def _resolve(self, target: tuple[StorageKey, ObjectKey]) -> tuple[Resource, Obj] | None:
        storage, key = target
        obj = self.objects.get(storage, {}).get(key)
        if obj is None:
            return None
        for resource in self.resources.values():
            if resource.storage_key == storage:
                return resource, obj
        return None

    def _owner_exists(self, ref: dict[str, Any], namespace: str) -> bool | None:
        """True/False, or None when the owner's kind is not served (cannot tell)."""
        owner = self.by_kind(str(ref.get("apiVersion", "")), str(ref.get("kind", "")))
        if owner is None:
            return None
        target = self.uids.get(str(ref.get("uid", "")))
        if target is None or target[0] != owner.storage_key:
            return False
        # a namespaced owner must live in the dependent's namespace (else: treated as absent)
        return not owner.namespaced or target[1][0] == namespace

    def _collect(self, owner_uid: str) -> None:
        """An owner is gone: delete dependents with no owner left, unlink the others."""
        for target in list(self.dependents.pop(owner_uid, set())):
            found = self._resolve(target)
            if found is None:
                continue
            resource, obj = found
            self._collect_one(resource, target[1], obj)

    def _collect_dangling(self, resource: Resource, key: ObjectKey) -> None:
        obj = self.objects[resource.storage_key].get(key)
        if obj is not None:
            self._collect_one(resource, key, obj)

    def _collect_one(self, resource: Resource, key: ObjectKey, obj: Obj) -> None:
        refs = obj["metadata"].get("ownerReferences") or []
        alive = [ref for ref in refs if self._owner_exists(ref, key[0]) is not False]
        if alive == refs:
            return
        if alive:
            new = clone(obj)
            new["metadata"]["ownerReferences"] = alive
            self._commit_update(resource, key, obj, new)
        else:
            self.delete(resource, key[0] or None, key[1])

    def _orphan(self, owner_uid: str) -> None:
        for target in list(self.dependents.pop(owner_uid, set())):
            found = self._resolve(target)
            if found is None:
                continue
            resource, obj = found
            new = clone(obj)
            refs = [r for r in new["metadata"].get("ownerReferences") or []
                    if r.get("uid") != owner_uid]
            if refs:
                new["metadata"]["ownerReferences"] = refs
            else:
                new["metadata"].pop("ownerReferences", None)
            self._commit_update(resource, target[1], obj, new)

    def _foreground(self, resource: Resource, key: ObjectKey) -> None:
        """Foreground deletion: delete dependents first, then drop the finalizer."""
        obj = self.objects[resource.storage_key].get(key)
        if obj is None:
            return
        uid = obj["metadata"]["uid"]
        remaining = [t for t in self.dependents.get(uid, set()) if self._resolve(t)]
        for target in remaining:
            found = self._resolve(target)
            if found is not None and not found[1]["metadata"].get("deletionTimestamp"):
                self.delete(found[0], target[1][0] or None, target[1][1],
                            DeleteOptions(propagation="Foreground"))
        remaining = [t for t in self.dependents.get(uid, set()) if self._resolve(t)]
        if remaining:
            assert self.loop is not None
            self.loop.call_later(0.05, lambda: self._later(
                lambda: self._foreground(resource, key)))
            return
        obj = self.objects[resource.storage_key].get(key)
        if obj is None:
            return
        new = clone(obj)
        new["metadata"]["finalizers"] = [
            f for f in new["metadata"].get("finalizers") or [] if f != "foregroundDeletion"]
        if not new["metadata"]["finalizers"]:
            del new["metadata"]["finalizers"]
        self._commit_update(resource, key, obj, new)

    # -- namespaces ------------------------------------------------------------------------

    def _namespace_contents(self, namespace: str) -> Iterable[tuple[StorageKey, ObjectKey]]:
        for storage, items in self.objects.items():
            for key in items:
                if key[0] == namespace:
                    yield storage, key

    def _sweep_namespace(self, namespace: str) -> None:
        for target in list(self._namespace_contents(namespace)):
            found = self._resolve(target)
            if found is not None and not found[1]["metadata"].get("deletionTimestamp"):
                self.delete(found[0], namespace, target[1][1])
        self._namespace_done(namespace)

    def _namespace_done(self, namespace: str) -> None:
        namespaces = self.find("", "v1", "namespaces")
        assert namespaces is not None
        obj = self.objects[namespaces.storage_key].get(("", namespace))
        if obj is None or not obj["metadata"].get("deletionTimestamp"):
            return
        if any(True for _ in self._namespace_contents(namespace)):
            return
        if obj["metadata"].get("finalizers"):
            return
        final = clone(obj)
        final["metadata"]["resourceVersion"] = self._next_rv()
        final["spec"] = {}
        self._remove(namespaces, ("", namespace), final)

    def _crd_conflicts(self, crd: Obj) -> None:
        for resource in resources_from_crd(crd):
            existing = self.find(resource.group, resource.version, resource.plural)
            if existing is not None and not existing.custom:
                raise errors.invalid("CustomResourceDefinition", "apiextensions.k8s.io",
                                     crd["metadata"]["name"],
                                     [("spec.names.plural", "Invalid value: conflicts with a "
                                                            "built-in resource")])


def _initial_status(resource: Resource) -> dict[str, Any]:
    if resource.plural in ("pods",):
        return {"phase": "Pending", "qosClass": "BestEffort"}
    if resource.plural in ("persistentvolumeclaims", "persistentvolumes"):
        return {"phase": "Pending"}
    if resource.plural == "services":
        return {"loadBalancer": {}}
    if resource.plural == "ingresses":
        return {"loadBalancer": {}}
    return {}


def _crd_causes(crd: Obj) -> list[tuple[str, str]]:
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    causes: list[tuple[str, str]] = []
    expected = f"{names.get('plural')}.{spec.get('group')}"
    if crd["metadata"].get("name") != expected:
        causes.append(("metadata.name", f'Invalid value: "{crd["metadata"].get("name")}": '
                                        f"must be spec.names.plural+\".\"+spec.group"))
    versions = spec.get("versions") or []
    if not versions or sum(1 for v in versions if v.get("storage")) != 1:
        causes.append(("spec.versions", "Invalid value: must have exactly one version marked "
                                        "as storage version"))
    for index, version in enumerate(versions):
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        if schema is None:
            causes.append((f"spec.versions[{index}].schema.openAPIV3Schema", "Required value: "
                                                                             "schemas are "
                                                                             "required"))
        elif schema.get("type") != "object":
            causes.append((f"spec.versions[{index}].schema.openAPIV3Schema.type",
                           'Unsupported value: must be "object" at the root'))
    return causes


def _crd_status(crd: Obj) -> dict[str, Any]:
    spec = crd.get("spec") or {}
    now = now_rfc3339()
    return {
        "acceptedNames": spec.get("names") or {},
        "storedVersions": [v["name"] for v in spec.get("versions") or [] if v.get("storage")],
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
             "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted", "lastTransitionTime": now},
        ],
    }
