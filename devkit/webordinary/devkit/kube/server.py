"""HTTP face of the emulator: kmock's KubernetesEmulator handler with a strict API behind it.

API paths (/api, /apis, /version, /openapi, /healthz) are served from the Store; anything
else falls through to kmock's DSL (so tests may still add kmock reactions for other paths).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
from collections import Counter
from typing import Any

import aiohttp.web
import attrs
import kmock
import yaml

from webordinary.devkit.kube import errors, openapi, protobuf
from webordinary.devkit.kube.data import dumps, loads
from webordinary.devkit.kube.errors import ApiError
from webordinary.devkit.kube.resources import VERBS, Resource
from webordinary.devkit.kube.selectors import parse_field_selector, parse_label_selector
from webordinary.devkit.kube.store import DeleteOptions, Event, Obj, Shares, Store, Watcher
from webordinary.devkit.kube.tables import INCLUDE_OBJECT, as_table, wants_table

log = logging.getLogger(__name__)

KUBE_GIT_VERSION = "v1.33.0"
_JSON = "application/json"
_API_ROOTS = ("api", "apis", "version", "openapi", "healthz", "livez", "readyz")
_NAMESPACE_SUBRESOURCES = ("status", "finalize")
_BOOKMARK_SECONDS = 10.0
# A watch stream's timer tick in its inbox (see `_watch`): its end or a bookmark may be due.
_TICK = ("TICK", Event(0, "TICK", {}))


def _response(payload: Any, status: int = 200, warnings: list[str] | None = None,
              encoded: bytes | None = None) -> aiohttp.web.Response:
    """`encoded`: the payload already serialised (a write's event)."""
    headers = {"Content-Type": _JSON}
    body = encoded if encoded is not None else dumps(payload)
    response = aiohttp.web.Response(body=body, status=status, headers=headers)
    for warning in warnings or []:
        escaped = warning.replace("\\", "\\\\").replace('"', '\\"')
        response.headers.add("Warning", f'299 - "{escaped}"')
    return response


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("true", "1")


@attrs.define(kw_only=True)
class StrictKubernetesEmulator(kmock.KubernetesEmulator):
    """kmock's emulator with the real API server's contract in front of it."""

    store: Store = attrs.field(factory=Store)
    address: str = ""
    timings: dict[str, float] = attrs.field(factory=dict)
    timing_counts: Counter[str] = attrs.field(factory=Counter)
    # Static bearer tokens (like kube-apiserver's --token-auth-file); None: any request passes.
    tokens: frozenset[str] | None = None
    # Bearer token -> user name (e.g. "system:serviceaccount:ns:name"), what admission policies
    # see as request.userInfo.username; other callers are system:anonymous.
    users: dict[str, str] = attrs.field(factory=dict)
    # When a list: every request (watches excluded) as (wall time it reached the handler, wall
    # time it was answered, verb, path), for benchmarks that explain a slow round trip.
    trace: list[tuple[float, float, str, str]] | None = None

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        parts = [p for p in raw_request.path.split("/") if p]
        if not parts or parts[0] not in _API_ROOTS:
            if not parts:
                return _response({"paths": self._root_paths()})
            return await super().__call__(raw_request)
        started = time.perf_counter()
        wall = time.time() if self.trace is not None else 0.0
        label = raw_request.method
        if self.tokens is not None and parts[0] not in ("healthz", "livez", "readyz"):
            scheme, _, token = (raw_request.headers.get("Authorization") or "").partition(" ")
            if scheme.lower() != "bearer" or token.strip() not in self.tokens:
                return _response(ApiError(401, "Unauthorized", "Unauthorized").status(), 401)
        try:
            response, label = await self._serve(raw_request, parts)
            return response
        except ApiError as exc:
            return _response(exc.status(), exc.code)
        except Exception as exc:
            log.exception("emulator: %s %s failed", raw_request.method, raw_request.path_qs)
            status = ApiError(500, "InternalError", f"Internal error occurred: {exc!r}").status()
            return _response(status, 500)
        finally:
            if label != "WATCH":
                elapsed = time.perf_counter() - started
                self.timings[label] = self.timings.get(label, 0.0) + elapsed
                self.timing_counts[label] += 1
                if self.trace is not None:
                    self.trace.append((wall, wall + elapsed, label, raw_request.path))

    # -- routing ---------------------------------------------------------------------------

    async def _serve(
        self, raw: aiohttp.web.BaseRequest, parts: list[str]
    ) -> tuple[aiohttp.web.StreamResponse, str]:
        method = raw.method
        head = parts[0]
        if head in ("healthz", "livez", "readyz"):
            return aiohttp.web.Response(text="ok"), "GET"
        if head == "version":
            return _response(_version()), "GET"
        if head == "openapi":
            return self._openapi(parts), "GET"
        if head == "api":
            if len(parts) == 1:
                return _response({
                    "kind": "APIVersions", "versions": ["v1"],
                    "serverAddressByClientCIDRs": [
                        {"clientCIDR": "0.0.0.0/0", "serverAddress": self.address}],
                }), "GET"
            group, version, rest = "", parts[1], parts[2:]
        else:
            if len(parts) == 1:
                return _response(self._group_list()), "GET"
            if len(parts) == 2:
                return _response(self._group(parts[1])), "GET"
            group, version, rest = parts[1], parts[2], parts[3:]
        if not rest:
            return _response(self._resource_list(group, version)), "GET"

        namespace: str | None = None
        if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            namespace, rest = rest[1], rest[2:]
        plural = rest[0]
        name = rest[1] if len(rest) > 1 else None
        subresource = "/".join(rest[2:]) or None
        resource = self.store.find(group, version, plural)
        if resource is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if namespace is not None and not resource.namespaced:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if name is not None and resource.namespaced and namespace is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if subresource is not None and not self._has_subresource(resource, subresource):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")

        params = raw.query
        watch = method == "GET" and _truthy(params.get("watch"))
        verb = "WATCH" if watch else "LIST" if method == "GET" and name is None else method
        self.store.count(verb, resource, subresource)
        if watch:
            return await self._watch(raw, resource, namespace, name), "WATCH"
        if method == "GET":
            if name is None:
                return self._list(raw, resource, namespace), "LIST"
            obj = self.store.get(resource, namespace, name)
            if subresource == "scale":
                return _response(_scale(resource, obj)), "GET"
            return self._object_response(raw, resource, obj), "GET"

        body, shares = await self._body(raw)
        with self.store.acting_as(self._user(raw)):
            return self._write(raw, method, resource, namespace, name, subresource, body,
                               shares)

    def _user(self, raw: aiohttp.web.BaseRequest) -> str:
        scheme, _, token = (raw.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() == "bearer" and token.strip() in self.users:
            return self.users[token.strip()]
        return "system:anonymous"

    def _write(
        self, raw: aiohttp.web.BaseRequest, method: str, resource: Resource,
        namespace: str | None, name: str | None, subresource: str | None, body: Any,
        shares: Shares,
    ) -> tuple[aiohttp.web.StreamResponse, str]:
        params = raw.query
        dry_run = params.get("dryRun") == "All"
        strict = params.get("fieldValidation") == "Strict"
        if method == "POST":
            if name is not None:
                raise errors.method_not_allowed(f"POST is not supported on {raw.path}")
            obj, warnings = self.store.create(resource, namespace, body, dry_run=dry_run,
                                              strict_fields=strict, shares=shares)
            return _response(obj, 201, warnings, self._encoded(resource, obj)), "POST"
        if method == "PUT":
            if name is None:
                raise errors.method_not_allowed(f"PUT is not supported on {raw.path}")
            if subresource == "scale":
                body = _scale_to_patch(resource, body)
                obj, warnings = self.store.patch(
                    resource, namespace, name, "application/merge-patch+json", body,
                    dry_run=dry_run)
                return _response(_scale(resource, obj), 200, warnings), "PUT"
            if resource.plural == "namespaces" and subresource == "finalize":
                obj, warnings = self._finalize_namespace(name, body)
                return _response(obj, 200, warnings), "PUT"
            obj, warnings = self.store.update(resource, namespace, name, body,
                                              subresource=subresource, dry_run=dry_run,
                                              strict_fields=strict, shares=shares)
            return _response(obj, 200, warnings, self._encoded(resource, obj)), "PUT"
        if method == "PATCH":
            if name is None:
                raise errors.method_not_allowed(f"PATCH is not supported on {raw.path}")
            content_type = (raw.headers.get("Content-Type") or "").split(";")[0].strip()
            if subresource == "scale":
                if content_type == "application/json-patch+json":
                    raise errors.unsupported_media_type(content_type)
                body = _scale_to_patch(resource, body)
                content_type = "application/merge-patch+json"
                subresource = None
            if content_type == "application/apply-patch+yaml":
                if not params.get("fieldManager"):
                    raise errors.bad_request("PatchOptions.meta.k8s.io \"\" is invalid: "
                                             "fieldManager: Required value: is required for "
                                             "apply patch")
                obj, warnings, created = self.store.apply(
                    resource, namespace, name, body, subresource=subresource, dry_run=dry_run,
                    strict_fields=strict)
                return _response(obj, 201 if created else 200, warnings), "PATCH"
            obj, warnings = self.store.patch(resource, namespace, name, content_type, body,
                                             subresource=subresource, dry_run=dry_run,
                                             strict_fields=strict)
            if raw.path.endswith("/scale"):
                return _response(_scale(resource, obj), 200, warnings), "PATCH"
            return _response(obj, 200, warnings, self._encoded(resource, obj)), "PATCH"
        if method == "DELETE":
            options = _delete_options(body, params)
            if name is None:
                return self._delete_collection(raw, resource, namespace, options,
                                               dry_run), "DELETE"
            obj, removed = self.store.delete(resource, namespace, name, options,
                                             dry_run=dry_run)
            if removed and not resource.custom:
                return _response({
                    "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                    "details": {"name": name, "group": resource.group, "kind": resource.plural,
                                "uid": obj["metadata"]["uid"]},
                }), "DELETE"
            return _response(obj), "DELETE"
        raise errors.method_not_allowed(f"{method} is not supported")

    def _encoded(self, resource: Resource, obj: Obj) -> bytes | None:
        """The JSON of a write's result when it is the latest event (serialised once for the
        answer and the watch lines); None for a dry run or a write that changed nothing."""
        history = self.store.history.get(resource.storage_key)
        if history and history[-1].obj is obj:
            return history[-1].encoded()
        return None

    @staticmethod
    def _has_subresource(resource: Resource, subresource: str) -> bool:
        if subresource == "status":
            return resource.status
        if subresource == "scale":
            return resource.plural in ("deployments", "statefulsets", "replicasets") or bool(
                resource.scale)
        if subresource == "finalize":
            return resource.plural == "namespaces"
        return False

    async def _body(self, raw: aiohttp.web.BaseRequest) -> tuple[Any, Shares]:
        """The decoded body, and what its parts may be shared with (JSON decodes to objects
        of its own; YAML aliases share, so those bodies are copied as a caller's)."""
        data = await raw.read()
        if not data:
            return None, "caller"
        content_type = (raw.headers.get("Content-Type") or "").split(";")[0].strip()
        if content_type == protobuf.PROTOBUF and raw.method == "POST":
            return protobuf.decode(data), "caller"
        if "protobuf" in content_type:
            raise errors.unsupported_media_type(content_type)
        try:
            if content_type in ("application/apply-patch+yaml", "application/yaml"):
                return yaml.safe_load(data), "caller"
            return loads(data), "nothing"
        except (ValueError, yaml.YAMLError) as exc:
            raise errors.bad_request(f"the body of the request cannot be decoded: {exc}") from exc

    def _finalize_namespace(self, name: str, body: Any) -> tuple[Obj, list[str]]:
        namespaces = self.store.find("", "v1", "namespaces")
        assert namespaces is not None
        current = self.store.get(namespaces, None, name)
        spec = (body or {}).get("spec") or {}
        new = json.loads(json.dumps(current))
        new["spec"] = {"finalizers": list(spec.get("finalizers") or [])}
        return self.store.update(namespaces, None, name, new, require_rv=False)

    # -- reading ---------------------------------------------------------------------------

    def _object_response(self, raw: aiohttp.web.BaseRequest, resource: Resource, obj: Obj
                         ) -> aiohttp.web.Response:
        if obj.get("apiVersion") != resource.api_version:
            obj = {**obj, "apiVersion": resource.api_version}
        if wants_table(raw.headers.get("Accept", "")):
            return _response(as_table(resource, [obj], self.store.rv, _include(raw)))
        return _response(obj)

    def _list(self, raw: aiohttp.web.BaseRequest, resource: Resource, namespace: str | None
              ) -> aiohttp.web.Response:
        params = raw.query
        labels = parse_label_selector(params.get("labelSelector", ""))
        fields = parse_field_selector(params.get("fieldSelector", ""), resource.plural)
        items = self.store.select(resource, namespace, labels, fields)
        list_rv = self.store.rv
        start = 0
        token = params.get("continue")
        if token:
            try:
                state = json.loads(base64.urlsafe_b64decode(token.encode()))
                list_rv, after = int(state["rv"]), tuple(state["after"])
            except (ValueError, KeyError, TypeError) as exc:
                raise errors.bad_request(f"invalid continue token: {exc}") from exc
            start = next((i for i, o in enumerate(items)
                          if (o["metadata"].get("namespace", ""), o["metadata"]["name"]) > after),
                         len(items))
        limit = int(params.get("limit") or 0)
        meta: dict[str, Any] = {"resourceVersion": str(list_rv)}
        page = items[start:start + limit] if limit > 0 else items[start:]
        if limit > 0 and start + limit < len(items):
            last = page[-1]["metadata"]
            meta["continue"] = base64.urlsafe_b64encode(dumps(
                {"rv": list_rv, "after": [last.get("namespace", ""), last["name"]]})).decode()
            meta["remainingItemCount"] = len(items) - start - limit
        if wants_table(raw.headers.get("Accept", "")):
            table = as_table(resource, page, list_rv, _include(raw))
            table["metadata"].update(meta)
            return _response(table)
        if resource.custom:
            out = [o if o.get("apiVersion") == resource.api_version
                   else {**o, "apiVersion": resource.api_version} for o in page]
        else:
            out = [{k: v for k, v in o.items() if k not in ("kind", "apiVersion")} for o in page]
        return _response({
            "kind": f"{resource.kind}List", "apiVersion": resource.api_version,
            "metadata": meta, "items": out,
        })

    def _delete_collection(
        self, raw: aiohttp.web.BaseRequest, resource: Resource, namespace: str | None,
        options: DeleteOptions, dry_run: bool,
    ) -> aiohttp.web.Response:
        params = raw.query
        labels = parse_label_selector(params.get("labelSelector", ""))
        fields = parse_field_selector(params.get("fieldSelector", ""), resource.plural)
        items = self.store.select(resource, namespace, labels, fields)
        deleted = []
        for obj in items:
            meta = obj["metadata"]
            result, _ = self.store.delete(resource, meta.get("namespace"), meta["name"],
                                          options, dry_run=dry_run)
            deleted.append(result)
        return _response({
            "kind": f"{resource.kind}List", "apiVersion": resource.api_version,
            "metadata": {"resourceVersion": str(self.store.rv)}, "items": deleted,
        })

    async def _watch(
        self, raw: aiohttp.web.BaseRequest, resource: Resource, namespace: str | None,
        name: str | None,
    ) -> aiohttp.web.StreamResponse:
        params = raw.query
        labels = parse_label_selector(params.get("labelSelector", ""))
        fields = parse_field_selector(params.get("fieldSelector", ""), resource.plural)
        rv_param = params.get("resourceVersion", "")
        send_initial = _truthy(params.get("sendInitialEvents"))
        bookmarks = _truthy(params.get("allowWatchBookmarks"))
        timeout = float(params.get("timeoutSeconds") or 0)
        try:
            since = None if rv_param in ("", "0") else int(rv_param)
        except ValueError as exc:
            raise errors.bad_request(f'invalid resourceVersion "{rv_param}"') from exc
        if send_initial:
            since = None
        table = wants_table(raw.headers.get("Accept", ""))
        include = _include(raw) if table else ""
        watcher = Watcher(resource, namespace, name, labels, fields)
        failure: ApiError | None = None
        try:
            backlog = self.store.subscribe(watcher, since, initial=since is None)
        except ApiError as exc:
            backlog, failure = [], exc
        response = aiohttp.web.StreamResponse(
            status=200, headers={"Content-Type": _JSON, "Cache-Control": "no-cache"})
        response.enable_chunked_encoding()
        await response.prepare(raw)
        kind, api_version = resource.kind, resource.api_version
        headers = [True]
        timer: list[asyncio.TimerHandle | None] = [None]

        def line(event_type: str, event: Event) -> bytes:
            if not table:
                return event.line(event_type, api_version)
            rows = as_table(resource, [event.obj], event.rv, include, headers=headers[0])
            headers[0] = False
            return dumps({"type": event_type, "object": rows}) + b"\n"

        try:
            if failure is not None:
                await response.write(dumps({"type": "ERROR", "object": failure.status()}) + b"\n")
                return response
            if backlog:
                await response.write(b"".join(line(t, e) for t, e in backlog))
            if send_initial:
                await response.write(_bookmark(kind, api_version, self.store.rv, initial=True))
            # One timer, not a timeout per wait (asyncio.wait_for on each event was ~5 % of
            # the emulator's CPU): it puts a tick in the inbox at the stream's end or when a
            # bookmark may be due (10 s without a write).
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout if timeout > 0 else None
            quiet_since = loop.time()

            def arm() -> None:
                due = min(deadline if deadline is not None else float("inf"),
                          quiet_since + _BOOKMARK_SECONDS if bookmarks else float("inf"))
                if due != float("inf"):
                    timer[0] = loop.call_at(due, watcher.queue.put_nowait, _TICK)

            arm()
            while True:
                item = await watcher.queue.get()
                chunk: list[bytes] = []
                stop = ticked = False
                while True:
                    if item is None:
                        stop = True
                        break
                    if item is _TICK:
                        ticked = True
                    else:
                        chunk.append(line(item[0], item[1]))
                    if watcher.queue.empty():
                        break
                    item = watcher.queue.get_nowait()
                if chunk:
                    await response.write(b"".join(chunk))
                    quiet_since = loop.time()
                if stop:
                    break
                if ticked:
                    now = loop.time()
                    if deadline is not None and now >= deadline:
                        break
                    if bookmarks and now >= quiet_since + _BOOKMARK_SECONDS:
                        await response.write(_bookmark(kind, api_version, self.store.rv))
                        quiet_since = loop.time()
                    arm()
        except ConnectionError:
            pass
        finally:
            if timer[0] is not None:
                timer[0].cancel()
            self.store.unsubscribe(watcher)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await response.write_eof()
        return response

    # -- discovery -------------------------------------------------------------------------

    def _openapi(self, parts: list[str]) -> aiohttp.web.Response:
        resources = list(self.store.resources.values())
        if parts[1:] == ["v3"]:
            return _response(openapi.root(resources))
        if len(parts) >= 4 and parts[1] == "v3":
            gv = parts[2:]
            if gv[0] == "api" and gv[1:] == ["v1"]:
                chosen = [r for r in resources if not r.group]
            elif gv[0] == "apis" and len(gv) == 3:
                chosen = [r for r in resources if r.group == gv[1] and r.version == gv[2]]
            else:
                chosen = []
            document = openapi.document(chosen)
            if document is not None:
                return aiohttp.web.Response(body=document, headers={"Content-Type": _JSON})
        raise ApiError(404, "NotFound", "the server could not find the requested resource")

    def _root_paths(self) -> list[str]:
        paths = {"/api", "/api/v1", "/apis", "/version", "/healthz"}
        for resource in self.store.resources.values():
            if resource.group:
                paths.add(f"/apis/{resource.group}")
                paths.add(f"/apis/{resource.group}/{resource.version}")
        return sorted(paths)

    def _versions(self) -> dict[str, list[str]]:
        groups: dict[str, list[str]] = {}
        for resource in self.store.resources.values():
            if resource.group:
                versions = groups.setdefault(resource.group, [])
                if resource.version not in versions:
                    versions.append(resource.version)
        return groups

    @staticmethod
    def _group_entry(group: str, versions: list[str]) -> dict[str, Any]:
        entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {"name": group, "versions": entries, "preferredVersion": entries[0]}

    def _group_list(self) -> dict[str, Any]:
        return {
            "kind": "APIGroupList", "apiVersion": "v1",
            "groups": [self._group_entry(g, v) for g, v in sorted(self._versions().items())],
        }

    def _group(self, group: str) -> dict[str, Any]:
        versions = self._versions().get(group)
        if not versions:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return {"kind": "APIGroup", "apiVersion": "v1", **self._group_entry(group, versions)}

    def _resource_list(self, group: str, version: str) -> dict[str, Any]:
        resources = [r for r in self.store.resources.values()
                     if r.group == group and r.version == version]
        if not resources:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        entries: list[dict[str, Any]] = []
        for resource in sorted(resources, key=lambda r: r.plural):
            entry: dict[str, Any] = {
                "name": resource.plural, "singularName": resource.singular,
                "namespaced": resource.namespaced, "kind": resource.kind, "verbs": list(VERBS),
            }
            if resource.short_names:
                entry["shortNames"] = list(resource.short_names)
            if resource.categories:
                entry["categories"] = list(resource.categories)
            entries.append(entry)
            subresources = ["status"] if resource.status else []
            if self._has_subresource(resource, "scale"):
                subresources.append("scale")
            for sub in subresources:
                sub_entry: dict[str, Any] = {
                    "name": f"{resource.plural}/{sub}", "singularName": "",
                    "namespaced": resource.namespaced, "kind": resource.kind,
                    "verbs": ["get", "patch", "update"],
                }
                if sub == "scale":
                    sub_entry.update(group="autoscaling", version="v1", kind="Scale")
                entries.append(sub_entry)
        return {"kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": f"{group}/{version}" if group else version,
                "resources": entries}


def _include(raw: aiohttp.web.BaseRequest) -> str:
    """`includeObject` of a Table request (Metadata when absent)."""
    value = raw.query.get("includeObject") or "Metadata"
    if value not in INCLUDE_OBJECT:
        raise errors.bad_request(f'Invalid value: "{value}": includeObject must be one of '
                                 f"{', '.join(INCLUDE_OBJECT)}")
    return value


def _version() -> dict[str, str]:
    return {
        "major": "1", "minor": "33", "gitVersion": KUBE_GIT_VERSION,
        "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
        "buildDate": "2025-04-23T00:00:00Z", "goVersion": "go1.24.2", "compiler": "gc",
        "platform": "linux/amd64",
    }


def _bookmark(kind: str, api_version: str, rv: int, initial: bool = False) -> bytes:
    meta: dict[str, Any] = {"resourceVersion": str(rv)}
    if initial:
        meta["annotations"] = {"k8s.io/initial-events-end": "true"}
    return dumps({"type": "BOOKMARK",
                   "object": {"kind": kind, "apiVersion": api_version, "metadata": meta}}) + b"\n"


def _delete_options(body: Any, params: Any) -> DeleteOptions:
    options = DeleteOptions()
    body = body if isinstance(body, dict) else {}
    propagation = body.get("propagationPolicy") or params.get("propagationPolicy")
    if body.get("orphanDependents") is True or params.get("orphanDependents") == "true":
        propagation = "Orphan"
    if propagation:
        if propagation not in ("Background", "Foreground", "Orphan"):
            raise errors.bad_request(f'unsupported propagationPolicy "{propagation}"')
        options.propagation = propagation
    preconditions = body.get("preconditions") or {}
    options.uid = preconditions.get("uid")
    options.resource_version = preconditions.get("resourceVersion")
    return options


def _scale(resource: Resource, obj: Obj) -> dict[str, Any]:
    meta = obj["metadata"]
    return {
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                          "creationTimestamp") if k in meta},
        "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)},
        "status": {"replicas": (obj.get("status") or {}).get("replicas", 0)},
    }


def _scale_to_patch(resource: Resource, body: Any) -> dict[str, Any]:
    replicas = ((body or {}).get("spec") or {}).get("replicas")
    if not isinstance(replicas, int):
        raise errors.bad_request("spec.replicas of a Scale must be an integer")
    patch: dict[str, Any] = {"spec": {"replicas": replicas}}
    rv = ((body or {}).get("metadata") or {}).get("resourceVersion")
    if rv:
        patch["metadata"] = {"resourceVersion": rv}
    return patch


__all__ = ["Event", "StrictKubernetesEmulator"]
