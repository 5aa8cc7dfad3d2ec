"""`as=Table` responses (what `kubectl get` asks for): the columns the real server prints.

Custom resources: Name, the CRD's additionalPrinterColumns (Age appended when absent).
Built-ins: the real server's columns for the kinds the platform uses (services' ports,
events' type/reason/object/message, ...). `includeObject` (None | Metadata | Object) chooses
what each row carries, as on a real server (`kubectl get --sort-by` asks for Object).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from typing import Any

from webordinary.devkit.kube.resources import Resource

Obj = dict[str, Any]
Cell = Callable[[Obj], Any]
INCLUDE_OBJECT = ("None", "Metadata", "Object")


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


_STEP = re.compile(
    r'\.([A-Za-z0-9_\-]+)|\[(\d+)\]|\[\?\(@\.([A-Za-z0-9_\-]+)==["\']([^"\']*)["\']\)\]')


def _json_path(obj: Any, path: str) -> Any:
    """The JSONPath subset printer columns use: .a.b, [0], [?(@.type=="Ready")]."""
    current: Any = obj
    for match in _STEP.finditer(path.strip()):
        key, index, filter_key, filter_value = match.groups()
        if key is not None:
            current = current.get(key) if isinstance(current, dict) else None
        elif index is not None:
            items = current if isinstance(current, list) else []
            current = items[int(index)] if int(index) < len(items) else None
        else:
            items = current if isinstance(current, list) else []
            current = next((i for i in items if isinstance(i, dict)
                            and str(i.get(filter_key)) == filter_value), None)
        if current is None:
            return None
    return current


def human_duration(seconds: float) -> str:
    """Kubernetes' HumanDuration (apimachinery/pkg/util/duration)."""
    if seconds < -1:
        return "<invalid>"
    total = max(int(seconds), 0)
    minutes, hours, days = total // 60, total // 3600, total // 86400
    if total < 120:
        return f"{total}s"
    if minutes < 10:
        rest = total % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{days}d{rest}h" if rest else f"{days}d"
    if hours < 24 * 365 * 2:
        return f"{days}d"
    years = days // 365
    if hours < 24 * 365 * 8:
        rest = days % 365
        return f"{years}y{rest}d" if rest else f"{years}y"
    return f"{years}y"


def age(timestamp: Any) -> str:
    """A date cell: RFC 3339 with any fraction and offset; "<invalid>" for anything else."""
    if not timestamp:
        return "<unknown>"
    try:
        moment = datetime.datetime.fromisoformat(str(timestamp))
    except ValueError:
        return "<invalid>"
    if moment.tzinfo is None:
        return "<invalid>"
    return human_duration((datetime.datetime.now(datetime.UTC) - moment).total_seconds())


def _path(path: str, default: Any = None) -> Cell:
    def cell(obj: Obj) -> Any:
        value = _json_path(obj, path)
        return default if value is None else value
    return cell


def _count(key: str) -> Cell:
    return lambda obj: len(obj.get(key) or {})


def _age_of(*paths: str) -> Cell:
    def cell(obj: Obj) -> str:
        for path in paths:
            value = _json_path(obj, path)
            if value:
                return age(value)
        return "<unknown>"
    return cell


def _service_ports(obj: Obj) -> str:
    ports = []
    for port in (obj.get("spec") or {}).get("ports") or []:
        text = str(port.get("port"))
        if port.get("nodePort"):
            text += f":{port['nodePort']}"
        ports.append(f"{text}/{port.get('protocol', 'TCP')}")
    return ",".join(ports) or "<none>"


def _external_ips(obj: Obj) -> str:
    spec = obj.get("spec") or {}
    if spec.get("type") == "ExternalName":
        return str(spec.get("externalName", "<none>"))
    ingress = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    found = [i.get("ip") or i.get("hostname") for i in ingress] + list(
        spec.get("externalIPs") or [])
    if found:
        return ",".join(str(f) for f in found if f)
    return "<pending>" if spec.get("type") == "LoadBalancer" else "<none>"


def _selector(obj: Obj) -> str:
    selector = (obj.get("spec") or {}).get("selector") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or "<none>"


def _ready_of_replicas(obj: Obj) -> str:
    status, spec = obj.get("status") or {}, obj.get("spec") or {}
    return f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}"


def _pod_ready(obj: Obj) -> str:
    statuses = (obj.get("status") or {}).get("containerStatuses") or []
    containers = (obj.get("spec") or {}).get("containers") or []
    return f"{sum(1 for s in statuses if s.get('ready'))}/{len(containers)}"


def _pod_restarts(obj: Obj) -> int:
    statuses = (obj.get("status") or {}).get("containerStatuses") or []
    return sum(int(s.get("restartCount", 0)) for s in statuses)


def _event_object(regarding: str) -> Cell:
    def cell(obj: Obj) -> str:
        ref = obj.get(regarding) or {}
        return f"{str(ref.get('kind', '')).lower()}/{ref.get('name', '')}"
    return cell


def _pod_selector(obj: Obj) -> str:
    selector = (obj.get("spec") or {}).get("podSelector") or {}
    labels = selector.get("matchLabels") or {}
    text = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    return text or "<none>"


def _ingress_hosts(obj: Obj) -> str:
    hosts = [str(r.get("host")) for r in (obj.get("spec") or {}).get("rules") or []
             if r.get("host")]
    return ",".join(hosts) or "*"


# (name, type, cell, priority); "Name" and "Age" are spelled out where the real server has them
Column = tuple[str, str, Cell, int]
_NAME: Column = ("Name", "string", lambda o: (o.get("metadata") or {}).get("name"), 0)
_AGE: Column = ("Age", "string", _age_of(".metadata.creationTimestamp"), 0)

BUILTIN_COLUMNS: dict[str, list[Column]] = {
    "deployments": [_NAME, ("Ready", "string", _ready_of_replicas, 0),
                    ("Up-to-date", "integer", _path(".status.updatedReplicas", 0), 0),
                    ("Available", "integer", _path(".status.availableReplicas", 0), 0), _AGE],
    "pods": [_NAME, ("Ready", "string", _pod_ready, 0),
             ("Status", "string", _path(".status.phase", "<none>"), 0),
             ("Restarts", "string", _pod_restarts, 0), _AGE],
    "services": [_NAME, ("Type", "string", _path(".spec.type", "<none>"), 0),
                 ("Cluster-IP", "string", _path(".spec.clusterIP", "<none>"), 0),
                 ("External-IP", "string", _external_ips, 0),
                 ("Port(s)", "string", _service_ports, 0), _AGE,
                 ("Selector", "string", _selector, 1)],
    "persistentvolumeclaims": [
        _NAME, ("Status", "string", _path(".status.phase", "<none>"), 0),
        ("Volume", "string", _path(".spec.volumeName", ""), 0),
        ("Capacity", "string", _path(".status.capacity.storage", ""), 0),
        ("Access Modes", "string",
         lambda o: ",".join(_short_mode(m) for m in (o.get("status") or {}).get(
             "accessModes") or []), 0),
        ("StorageClass", "string", _path(".spec.storageClassName", "<unset>"), 0),
        ("VolumeAttributesClass", "string",
         _path(".spec.volumeAttributesClassName", "<unset>"), 0), _AGE],
    "namespaces": [_NAME, ("Status", "string", _path(".status.phase", "<none>"), 0), _AGE],
    "configmaps": [_NAME, ("Data", "integer", _count("data"), 0), _AGE],
    "secrets": [_NAME, ("Type", "string", _path(".type", ""), 0),
                ("Data", "integer", _count("data"), 0), _AGE],
    "serviceaccounts": [_NAME, ("Secrets", "integer", lambda o: len(o.get("secrets") or []), 0),
                        _AGE],
    "networkpolicies": [_NAME, ("Pod-Selector", "string", _pod_selector, 0), _AGE],
    "ingresses": [_NAME, ("Class", "string", _path(".spec.ingressClassName", "<none>"), 0),
                  ("Hosts", "string", _ingress_hosts, 0),
                  ("Address", "string", lambda o: ",".join(
                      str(i.get("hostname") or i.get("ip")) for i in (
                          (o.get("status") or {}).get("loadBalancer") or {}).get("ingress")
                      or []), 0),
                  ("Ports", "string", lambda o: "80, 443" if (o.get("spec") or {}).get("tls")
                   else "80", 0), _AGE],
    "events": [("Last Seen", "string",
                _age_of(".lastTimestamp", ".eventTime", ".metadata.creationTimestamp"), 0),
               ("Type", "string", _path(".type", ""), 0),
               ("Reason", "string", _path(".reason", ""), 0),
               ("Object", "string", _event_object("involvedObject"), 0),
               ("Subobject", "string", _path(".involvedObject.fieldPath", ""), 1),
               ("Source", "string", _path(".source.component", ""), 1),
               ("Message", "string", _path(".message", ""), 0),
               ("First Seen", "string",
                _age_of(".firstTimestamp", ".eventTime", ".metadata.creationTimestamp"), 1),
               ("Count", "string", _path(".count", 1), 1),
               ("Name", "string", lambda o: (o.get("metadata") or {}).get("name"), 1)],
}
_EVENTS_K8S_IO: list[Column] = [
    ("Last Seen", "string", _age_of(".deprecatedLastTimestamp", ".eventTime",
                                    ".metadata.creationTimestamp"), 0),
    ("Type", "string", _path(".type", ""), 0),
    ("Reason", "string", _path(".reason", ""), 0),
    ("Object", "string", _event_object("regarding"), 0),
    ("Message", "string", _path(".note", ""), 0),
    ("Name", "string", lambda o: (o.get("metadata") or {}).get("name"), 1),
]


def _short_mode(mode: str) -> str:
    return {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX",
            "ReadWriteOncePod": "RWOP"}.get(mode, mode)


def _custom_cell(path: str, kind: str) -> Cell:
    def cell(obj: Obj) -> Any:
        value = _json_path(obj, path)
        if value is None:
            return None
        if kind == "date":
            return age(value)
        return value
    return cell


def columns_of(resource: Resource) -> list[Column]:
    if resource.custom:
        columns: list[Column] = [_NAME]
        for column in resource.printer_columns:
            columns.append((column["name"], column.get("type", "string"),
                            _custom_cell(column.get("jsonPath", ""), column.get("type", "")),
                            int(column.get("priority", 0))))
        if not any(c[0].lower() == "age" for c in columns):
            columns.append(_AGE)
        return columns
    if resource.plural == "events" and resource.group == "events.k8s.io":
        return _EVENTS_K8S_IO
    return BUILTIN_COLUMNS.get(resource.plural, [_NAME, _AGE])


def _row_object(resource: Resource, obj: Obj, include: str) -> Obj | None:
    if include == "None":
        return None
    if include == "Object":
        return {**obj, "kind": resource.kind, "apiVersion": resource.api_version}
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata", {})}


def as_table(resource: Resource, objs: list[Obj], rv: int, include: str = "Metadata",
             headers: bool = True) -> dict[str, Any]:
    """A meta.k8s.io/v1 Table of `objs`; `headers=False` leaves out the column definitions
    (watch events after the first, as the real server)."""
    columns = columns_of(resource)
    rows = []
    for obj in objs:
        cells: list[Any] = []
        for _, _, cell, _ in columns:
            value = cell(obj)
            cells.append("<none>" if value is None else value)
        row: dict[str, Any] = {"cells": cells}
        row_object = _row_object(resource, obj, include)
        if row_object is not None:
            row["object"] = row_object
        rows.append(row)
    table: dict[str, Any] = {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
                             "metadata": {"resourceVersion": str(rv)}, "rows": rows}
    if headers:
        table["columnDefinitions"] = [
            {"name": name, "type": kind, "format": "name" if name == "Name" else "",
             "description": name, "priority": priority}
            for name, kind, _, priority in columns]
    else:
        table["columnDefinitions"] = None
    return table
