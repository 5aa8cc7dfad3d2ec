"""A strict stand-in for the EKS Pod Identity API over real HTTP (moto 5.2 lacks it).

It speaks REST-JSON exactly as botocore's `eks` service model defines the five
PodIdentityAssociation operations: paths, query parameters, JSON bodies, the shapes' types and
length/range limits are checked against that model, and errors come back the way EKS answers
them (the `x-amzn-ErrorType` header and a JSON body with `message`): ResourceInUseException for
a second association of one namespace + service account, ResourceNotFoundException for an
unknown cluster or association, InvalidParameterException for a bad or unknown role, and
AccessDeniedException for an action the caller's (test-set) policy denies. Every call is
recorded, so tests count reads and writes.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import parse_qs, unquote, urlparse

import botocore.session
from botocore.model import OperationModel, Shape, StructureShape

OPERATIONS: Final = (
    "CreatePodIdentityAssociation", "ListPodIdentityAssociations",
    "DescribePodIdentityAssociation", "UpdatePodIdentityAssociation",
    "DeletePodIdentityAssociation",
)
WRITES: Final = frozenset({"CreatePodIdentityAssociation", "UpdatePodIdentityAssociation",
                           "DeletePodIdentityAssociation"})
ROLE_ARN: Final = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
ACCOUNT: Final = "123456789012"


class ApiError(Exception):
    """An AWS error answer: HTTP status, error type and message."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message


@dataclass(frozen=True)
class Route:
    operation: OperationModel
    method: str
    pattern: re.Pattern[str]
    labels: tuple[str, ...]


def _routes() -> list[Route]:
    model = botocore.session.get_session().get_service_model("eks")
    routes = []
    for name in OPERATIONS:
        operation = model.operation_model(name)
        uri = str(operation.http["requestUri"]).split("?")[0]
        labels = tuple(re.findall(r"\{(\w+)\}", uri))
        regex = re.sub(r"\\\{(\w+)\\\}", "([^/]+)", re.escape(uri))
        routes.append(Route(operation, str(operation.http["method"]), re.compile(f"^{regex}$"),
                            labels))
    return routes


def _invalid(message: str) -> ApiError:
    return ApiError(400, "InvalidParameterException", message)


def check(shape: Shape, value: Any, where: str) -> Any:
    """The value if it fits the model's shape (type, min/max, enum), else InvalidParameter."""
    kind, meta = shape.type_name, shape.metadata
    if kind == "structure":
        assert isinstance(shape, StructureShape)
        if not isinstance(value, dict):
            raise _invalid(f"{where} must be an object")
        unknown = set(value) - set(shape.members)
        if unknown:
            raise _invalid(f"{where}: unknown field(s) {sorted(unknown)}")
        for name in shape.required_members:
            if value.get(name) is None:
                raise _invalid(f"{where}.{name} is required" if where else f"{name} is required")
        return {name: check(shape.members[name], item, f"{where}.{name}".lstrip("."))
                for name, item in value.items()}
    if kind == "string":
        if not isinstance(value, str):
            raise _invalid(f"{where} must be a string")
        if len(value) < meta.get("min", 0) or len(value) > meta.get("max", 1 << 20):
            raise _invalid(f"{where} length must be {meta.get('min', 0)}..{meta.get('max')}")
        if shape.enum and value not in shape.enum:
            raise _invalid(f"{where} must be one of {shape.enum}")
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            raise _invalid(f"{where} must be a boolean")
        return value
    if kind == "integer":
        if isinstance(value, str):
            try:
                value = int(value)
            except ValueError:
                raise _invalid(f"{where} must be an integer") from None
        if not isinstance(value, int) or isinstance(value, bool):
            raise _invalid(f"{where} must be an integer")
        if value < meta.get("min", -(1 << 31)) or value > meta.get("max", 1 << 31):
            raise _invalid(f"{where} must be in {meta.get('min')}..{meta.get('max')}")
        return value
    if kind == "map":
        if not isinstance(value, dict):
            raise _invalid(f"{where} must be an object")
        if len(value) < meta.get("min", 0) or len(value) > meta.get("max", 1 << 20):
            raise _invalid(f"{where} must have {meta.get('min', 0)}..{meta.get('max')} entries")
        key_shape, value_shape = shape.key, shape.value
        return {check(key_shape, k, f"{where} key"): check(value_shape, v, f"{where}[{k}]")
                for k, v in value.items()}
    raise _invalid(f"{where}: unsupported shape {kind}")


@dataclass
class Association:
    cluster: str
    namespace: str
    service_account: str
    role_arn: str
    association_id: str
    arn: str
    tags: dict[str, str]
    disable_session_tags: bool
    created: float
    modified: float

    def full(self) -> dict[str, Any]:
        return {"clusterName": self.cluster, "namespace": self.namespace,
                "serviceAccount": self.service_account, "roleArn": self.role_arn,
                "associationArn": self.arn, "associationId": self.association_id,
                "tags": dict(self.tags), "createdAt": self.created,
                "modifiedAt": self.modified, "disableSessionTags": self.disable_session_tags}

    def summary(self) -> dict[str, Any]:
        return {"clusterName": self.cluster, "namespace": self.namespace,
                "serviceAccount": self.service_account, "associationArn": self.arn,
                "associationId": self.association_id}


@dataclass
class Call:
    operation: str
    params: dict[str, Any]


@dataclass
class PodIdentityApi:
    """The stand-in: clusters it knows, roles that exist (None: any well-formed role ARN),
    actions its callers are denied. `start()` serves on a free loopback port."""

    clusters: Iterable[str] = ("webordinary",)
    roles: Iterable[str] | None = None
    region: str = "us-east-1"
    host: str = "127.0.0.1"
    port: int = 0
    denied: set[str] = field(default_factory=set)
    calls: list[Call] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.clusters = set(self.clusters)
        self.roles = None if self.roles is None else set(self.roles)
        self._associations: dict[str, Association] = {}
        self._tokens: dict[tuple[str, str], str] = {}  # (cluster, clientRequestToken) -> id
        self._lock = threading.Lock()
        self._routes = _routes()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> PodIdentityApi:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, payload, kind = api.handle(self.command, self.path, body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("x-amzn-RequestId", secrets.token_hex(16))
                if kind:
                    self.send_header("x-amzn-ErrorType", f"{kind}:")
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = do_PUT = _serve

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="eks-standin",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> PodIdentityApi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def associations(self) -> list[dict[str, Any]]:
        """Every association (full form), for assertions."""
        with self._lock:
            return [a.full() for a in self._associations.values()]

    def writes(self) -> list[Call]:
        return [c for c in self.calls if c.operation in WRITES]

    def handle(self, method: str, target: str, body: bytes) -> tuple[int, Any, str | None]:
        """(status, JSON payload, error type or None) for one request."""
        url = urlparse(target)
        for route in self._routes:
            match = route.pattern.match(url.path)
            if match is None or route.method != method:
                continue
            name = route.operation.name
            try:
                params = self._params(route, match, url.query, body)
                with self._lock:
                    self.calls.append(Call(name, params))
                    if name in self.denied:
                        raise ApiError(403, "AccessDeniedException",
                                       f"User: arn:aws:sts::{ACCOUNT}:assumed-role/operator is "
                                       f"not authorized to perform: eks:{name}")
                    return 200, getattr(self, "_" + _snake(name))(params), None
            except ApiError as error:
                return error.status, {"message": error.message}, error.kind
        return 404, {"message": f"no route for {method} {url.path}"}, "UnknownOperationException"

    def _params(self, route: Route, match: re.Match[str], query: str,
                body: bytes) -> dict[str, Any]:
        shape = route.operation.input_shape
        assert isinstance(shape, StructureShape)
        labels = dict(zip(route.labels, (unquote(g) for g in match.groups()), strict=True))
        values: dict[str, Any] = {}
        try:
            payload = json.loads(body) if body.strip() else {}
        except ValueError:
            raise ApiError(400, "SerializationException", "body is not JSON") from None
        if not isinstance(payload, dict):
            raise ApiError(400, "SerializationException", "body must be a JSON object")
        queries = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        located = set()
        for member, member_shape in shape.members.items():
            where, wire = member_shape.serialization.get("location"), (
                member_shape.serialization.get("name", member))
            if where == "uri":
                located.add(member)
                values[member] = labels[wire]
            elif where == "querystring":
                located.add(member)
                if wire in queries:
                    values[member] = queries.pop(wire)
        if queries:
            raise _invalid(f"unknown query parameter(s) {sorted(queries)}")
        for key, value in payload.items():
            if key in located:
                raise _invalid(f"{key} belongs in the URI or query string, not the body")
            values[key] = value
        checked: dict[str, Any] = check(shape, values, "")
        return checked

    def _cluster(self, name: str) -> str:
        if name not in self.clusters:
            raise ApiError(404, "ResourceNotFoundException", f"No cluster found for name: {name}.")
        return name

    def _role(self, arn: str) -> str:
        if not ROLE_ARN.match(arn):
            raise _invalid(f"Invalid role ARN: {arn}")
        if self.roles is not None and arn not in self.roles:
            raise _invalid("Role provided in the request does not exist")
        return arn

    def _find(self, cluster: str, association_id: str) -> Association:
        found = self._associations.get(association_id)
        if found is None or found.cluster != cluster:
            raise ApiError(404, "ResourceNotFoundException",
                           f"Pod identity association {association_id} not found.")
        return found

    def _create_pod_identity_association(self, p: dict[str, Any]) -> dict[str, Any]:
        cluster = self._cluster(p["clusterName"])
        token = p.get("clientRequestToken")
        if token and (cluster, token) in self._tokens:
            earlier = self._associations.get(self._tokens[(cluster, token)])
            if earlier is not None and (earlier.namespace, earlier.service_account) == (
                    p["namespace"], p["serviceAccount"]):
                return {"association": earlier.full()}
            raise ApiError(400, "InvalidRequestException",
                           "clientRequestToken was used for a different request")
        role = self._role(p["roleArn"])
        for existing in self._associations.values():
            if (existing.cluster, existing.namespace, existing.service_account) == (
                    cluster, p["namespace"], p["serviceAccount"]):
                raise ApiError(409, "ResourceInUseException",
                               f"Association already exists: {existing.association_id}")
        association_id = "a-" + secrets.token_hex(9)[:17]
        now = time.time()
        association = Association(
            cluster, p["namespace"], p["serviceAccount"], role, association_id,
            f"arn:aws:eks:{self.region}:{ACCOUNT}:podidentityassociation/{cluster}/"
            f"{association_id}", dict(p.get("tags") or {}),
            bool(p.get("disableSessionTags", False)), now, now)
        self._associations[association_id] = association
        if token:
            self._tokens[(cluster, token)] = association_id
        return {"association": association.full()}

    def _list_pod_identity_associations(self, p: dict[str, Any]) -> dict[str, Any]:
        cluster = self._cluster(p["clusterName"])
        matching = sorted(
            (a for a in self._associations.values() if a.cluster == cluster
             and p.get("namespace") in (None, a.namespace)
             and p.get("serviceAccount") in (None, a.service_account)),
            key=lambda a: a.association_id)
        start = 0
        if p.get("nextToken"):
            try:
                start = int(p["nextToken"])
            except ValueError:
                raise _invalid("The nextToken is invalid") from None
        limit = int(p.get("maxResults") or 100)
        page = matching[start:start + limit]
        answer: dict[str, Any] = {"associations": [a.summary() for a in page]}
        if start + limit < len(matching):
            answer["nextToken"] = str(start + limit)
        return answer

    def _describe_pod_identity_association(self, p: dict[str, Any]) -> dict[str, Any]:
        cluster = self._cluster(p["clusterName"])
        return {"association": self._find(cluster, p["associationId"]).full()}

    def _update_pod_identity_association(self, p: dict[str, Any]) -> dict[str, Any]:
        cluster = self._cluster(p["clusterName"])
        association = self._find(cluster, p["associationId"])
        if p.get("roleArn") is not None:
            association.role_arn = self._role(p["roleArn"])
        if p.get("disableSessionTags") is not None:
            association.disable_session_tags = bool(p["disableSessionTags"])
        association.modified = time.time()
        return {"association": association.full()}

    def _delete_pod_identity_association(self, p: dict[str, Any]) -> dict[str, Any]:
        cluster = self._cluster(p["clusterName"])
        association = self._find(cluster, p["associationId"])
        del self._associations[association.association_id]
        return {"association": association.full()}


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def start_pod_identity(clusters: Iterable[str] = ("webordinary",),
                       roles: Iterable[str] | None = None) -> PodIdentityApi:
    """A running stand-in on a free loopback port."""
    return PodIdentityApi(clusters=clusters, roles=roles).start()

