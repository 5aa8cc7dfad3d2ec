"""The operator's watches of its children (Deployments, PVCs, ServiceAccounts, Services,
NetworkPolicies, editor pods): list once, then follow events, on the operator's own client.

kopf's per-event machinery (a worker per object, its body and patch classes, its batching) was
a third to a half of the operator's CPU at a thousand wakes or sleep deadlines, for events whose
handling is a few dictionary updates; and kopf filters labels client-side, so it received every
Deployment and Pod in scope. These watches ask the server for the managed labels only, hand each
event to one synchronous callback in order, and keep kopf's contract for it: objects found by a
list come with event type None (a first sight), watch events with ADDED/MODIFIED/DELETED.

Resumable: bookmarks keep the resourceVersion fresh, a dropped stream resumes from it, a 410
Gone lists again (an object missing from the new list is delivered as DELETED, which kopf's
re-list never did), other errors back off. With peering, the watches run only while this
replica is the active one (kopf pauses its own watches the same way) and resume from where
they stopped.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from webordinary.kube import Client, KubeError
from webordinary.kube.client import resource_path
from webordinary.operator import builders
from webordinary.operator.tasks import ended

log = logging.getLogger(__name__)

BACKOFF_MIN: Final = 0.2
BACKOFF_MAX: Final = 10.0
_META_KEPT: Final = ("name", "namespace", "labels", "ownerReferences", "resourceVersion")

# (kind name, event type or None for a listed object, the object)
Deliver = Callable[[str, str | None, Mapping[str, Any]], None]


class Activity(Protocol):
    """Whether this replica may act (standby.Standby)."""

    active: bool

    async def until(self, active: bool) -> None: ...


class _Always:
    active = True

    async def until(self, active: bool) -> None:
        if not active:
            await asyncio.Event().wait()


@dataclass(frozen=True)
class Watched:
    """One kind the operator watches, and the labels its objects carry."""

    resource: builders.Kind
    labels: Mapping[str, str]

    @property
    def kind(self) -> str:
        return self.resource.kind

    def selector(self) -> str:
        """The server-side labelSelector (equality terms, comma-joined)."""
        return ",".join(f"{key}={value}" for key, value in sorted(self.labels.items()))


MANAGED: Final = {"app.kubernetes.io/managed-by": builders.MANAGED_BY}
EDITOR_PODS: Final = {"app.kubernetes.io/name": builders.APP_NAME}
POD: Final = builders.Kind("v1", "Pod", "pods")
# Deployments, PVCs and editor pods: their status is the environment's status; the rest: only
# their versions (a drift tick skips an environment whose children did not change).
WATCHED: Final = (
    Watched(builders.DEPLOYMENT, MANAGED),
    Watched(builders.PVC, MANAGED),
    Watched(POD, EDITOR_PODS),
    Watched(builders.SERVICE_ACCOUNT, MANAGED),
    Watched(builders.SERVICE, MANAGED),
    Watched(builders.NETWORK_POLICY, MANAGED),
)


def specific(patterns: list[str]) -> bool:
    """Whether every namespace setting names one namespace (no glob or negation)."""
    return not any(mark in p for p in patterns for mark in "!*?,")


def in_scope(namespace: str, patterns: list[str]) -> bool:
    """kopf's namespace match: any pattern matches; a pattern's globs are read left to right
    (an exclusive `!glob` un-matches, a later inclusive one re-matches only what the first
    glob matched; a leading exclusive one implies `*` before it)."""
    if not patterns:
        return True
    for pattern in patterns:
        globs = [glob.strip() for glob in pattern.split(",")]
        if not globs or globs[0].startswith("!"):
            globs.insert(0, "*")
        matches = first = fnmatch.fnmatch(namespace, globs[0])
        for glob in globs[1:]:
            if glob.startswith("!"):
                matches = matches and not fnmatch.fnmatch(namespace, glob.lstrip("!"))
            else:
                matches = matches or (first and fnmatch.fnmatch(namespace, glob))
        if matches:
            return True
    return False


def scopes(patterns: list[str]) -> list[str | None]:
    """Where to watch: every namespace (None) when cluster-wide or when a pattern needs
    matching (then `in_scope` filters), else each named namespace."""
    if not patterns or not specific(patterns):
        return [None]
    return list(dict.fromkeys(patterns))


def remembered(body: Mapping[str, Any]) -> dict[str, Any]:
    """What a deletion noticed only by a re-list needs of an object: its identity, labels
    and owners (shared with the event's parsed JSON, not copied)."""
    meta = body.get("metadata") or {}
    return {"metadata": {k: meta[k] for k in _META_KEPT if k in meta}}


@dataclass
class Feed:
    """One kind in one scope: the objects it knows and the version to resume from."""

    watched: Watched
    namespace: str | None
    patterns: list[str] = field(default_factory=list)
    known: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    version: str | None = None
    following: bool = False  # listed, and its watch runs (see ChildWatch.synced)

    def path(self) -> str:
        return resource_path(self.watched.resource, self.namespace)

    def params(self) -> dict[str, str]:
        return {"labelSelector": self.watched.selector()}

    def relisted(self, items: list[dict[str, Any]]
                 ) -> Iterator[tuple[str | None, Mapping[str, Any]]]:
        """A (re-)list as events: every listed object (type None), then DELETED for each
        known object the list no longer has."""
        before, self.known = self.known, {}
        for item in items:
            if self._ours(item):
                self.known[_key(item)] = remembered(item)
                yield None, item
        for key, body in before.items():
            if key not in self.known:
                yield "DELETED", body

    def event(self, event: Mapping[str, Any]) -> tuple[str | None, Mapping[str, Any]] | None:
        """One watch event: what to deliver (None for a bookmark or another scope's object);
        the version to resume from moves on either way."""
        kind, obj = event.get("type"), event.get("object") or {}
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if version:
            self.version = str(version)
        if kind not in ("ADDED", "MODIFIED", "DELETED") or not self._ours(obj):
            return None
        if kind == "DELETED":
            self.known.pop(_key(obj), None)
        else:
            self.known[_key(obj)] = remembered(obj)
        return str(kind), obj

    def _ours(self, obj: Mapping[str, Any]) -> bool:
        if self.namespace is not None or not self.patterns:
            return True
        return in_scope((obj.get("metadata") or {}).get("namespace") or "", self.patterns)


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return meta.get("namespace") or "", meta.get("name") or ""


class ChildWatch:
    """Every watched kind in every scope, while this replica is active; `deliver` gets each
    event."""

    def __init__(self, watched: tuple[Watched, ...], patterns: list[str],
                 client: Callable[[], Client], deliver: Deliver,
                 activity: Activity | None = None) -> None:
        self.feeds = [Feed(w, ns, list(patterns)) for w in watched for ns in scopes(patterns)]
        self._client = client
        self._deliver = deliver
        self._activity: Activity = activity if activity is not None else _Always()
        self._task: asyncio.Task[None] | None = None
        self.relists = 0  # lists after the first one of a feed (410 Gone)

    def synced(self, kind: str, namespace: str) -> bool:
        """Whether the events delivered so far hold every `kind` object in `namespace`: its
        feed has listed and follows the watch from there (not while it lists again after a
        410, nor while paused). Then what `deliver` was given answers a read of them, as an
        informer's cache does once synced."""
        return any(feed.watched.kind == kind and feed.following
                   and (feed.namespace is None or feed.namespace == namespace)
                   and in_scope(namespace, feed.patterns)
                   for feed in self.feeds)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        await ended(self._task)
        self._task = None

    async def _run(self) -> None:
        """Follow every feed while this replica may act; pause (and resume from the last
        version) while a peer is the active one."""
        while True:
            await self._activity.until(True)
            tasks = [asyncio.get_running_loop().create_task(self._follow(feed))
                     for feed in self.feeds]
            try:
                await self._activity.until(False)
                log.info("child watches paused (a peer is active)")
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    def _hand(self, kind: str, event: str | None, body: Mapping[str, Any]) -> None:
        try:
            self._deliver(kind, event, body)
        except Exception:  # a bug in one event's handling must not end the watch
            log.exception("handling a %s event failed", kind)

    async def _follow(self, feed: Feed) -> None:
        try:
            await self._follow_feed(feed)
        finally:  # paused or stopped: what it delivered goes stale from here
            feed.following = False

    async def _follow_feed(self, feed: Feed) -> None:
        delay = BACKOFF_MIN
        kind = feed.watched.kind
        while True:
            try:
                client = self._client()
            except RuntimeError:  # not logged in yet
                await asyncio.sleep(BACKOFF_MIN)
                continue
            try:
                if feed.version is None:
                    feed.following = False
                    if feed.known:
                        self.relists += 1
                    items, version = await client.list_all(feed.path(), feed.params())
                    for event, body in feed.relisted(items):
                        self._hand(kind, event, body)
                    feed.version = version
                feed.following = True
                async for raw in client.watch(feed.path(), feed.params(), feed.version):
                    delivered = feed.event(raw)
                    if delivered is not None:
                        self._hand(kind, *delivered)
                    delay = BACKOFF_MIN
            except KubeError as error:
                feed.following = False  # events may be missed until the watch resumes
                if error.status == 410:
                    log.info("watch of %s expired; listing again", feed.path())
                    feed.version = None
                    continue
                if error.reason == "Closed":  # logged in again: the next client
                    await asyncio.sleep(BACKOFF_MIN)
                    continue
                log.warning("watch of %s interrupted (%s); resuming in %.1fs", feed.path(),
                            error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)
