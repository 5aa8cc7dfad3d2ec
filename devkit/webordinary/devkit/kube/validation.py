"""Validation as the API server does it, returning (field path, message) causes.

Built-ins: the official schemas bundled by kubernetes-validate (1.33, strict: unknown
fields are rejected), compiled once per kind and cached, plus the checks the real server does
beyond the schema that our workloads can trip over (names, labels, selector vs template
labels, container images, quantities, PVC requests, ingress paths).
Custom resources: the CRD's structural openAPIV3Schema (nullable, int-or-string,
preserve-unknown-fields), defaults and pruning as the real server applies them, and the
transition rule `self == oldSelf` of `x-kubernetes-validations`; other CEL rules are ignored.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterator
from functools import cache, lru_cache
from importlib import resources as importlib_resources
from typing import Any

from webordinary.devkit.kube.data import clone
from webordinary.devkit.kube.patches import PatchMeta
from webordinary.devkit.kube.resources import Resource
from webordinary.devkit.kube.schemacheck import Cause, Check, Compiler

KUBE_VERSION = "1.33.0"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_QUANTITY = re.compile(
    r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_LABEL_SERVICES = {"services", "namespaces"}


def field_path(parts: Iterator[Any] | list[Any]) -> str:
    """`['spec', 'containers', 0, 'name']` -> `spec.containers[0].name`."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


@lru_cache(maxsize=8192)
def _qualified_name_causes(key: str, path: str) -> tuple[Cause, ...]:
    """A function of its arguments alone, kept for the few distinct label and annotation
    keys of many objects."""
    prefix, _, name = key.rpartition("/")
    causes: list[Cause] = []
    if "/" in key and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        causes.append((path, f'Invalid value: "{key}": prefix part must be a DNS-1123 '
                             f"subdomain"))
    if not name or len(name) > 63 or not _LABEL_NAME.match(name):
        causes.append((path, f'Invalid value: "{key}": name part must consist of alphanumeric '
                             f"characters, '-', '_' or '.', and must start and end with an "
                             f"alphanumeric character (at most 63 characters)"))
    return tuple(causes)


@lru_cache(maxsize=8192)
def _label_value_valid(value: str) -> bool:
    return len(value) <= 63 and _LABEL_VALUE.match(value) is not None


def label_causes(labels: Any, path: str) -> list[Cause]:
    if labels is None:
        return []
    if not isinstance(labels, dict):
        return [(path, "Invalid value: must be a map of strings")]
    causes: list[Cause] = []
    for key, value in labels.items():
        causes += _qualified_name_causes(str(key), path)
        if not isinstance(value, str):
            causes.append((f"{path}", f"Invalid value: {value!r}: label values must be strings"))
        elif not _label_value_valid(value):
            causes.append((path, f'Invalid value: "{value}": a valid label must be an empty '
                                 f"string or consist of alphanumeric characters, '-', '_' or "
                                 f"'.', and must start and end with an alphanumeric character "
                                 f"(at most 63 characters)"))
    return causes


def metadata_causes(resource: Resource, obj: dict[str, Any]) -> list[Cause]:
    """Name, namespace, labels, annotations, ownerReferences: checked for every object."""
    meta = obj.get("metadata") or {}
    causes: list[Cause] = []
    name = meta.get("name", "")
    if resource.plural in _LABEL_SERVICES:
        pattern, max_len, what = (
            (_DNS_1035, 63, "RFC 1035 label") if resource.plural == "services"
            else (_DNS_LABEL, 63, "RFC 1123 label")
        )
    else:
        pattern, max_len, what = _DNS_SUBDOMAIN, 253, "RFC 1123 subdomain"
    if not isinstance(name, str) or not name or len(name) > max_len or not pattern.match(name):
        causes.append(("metadata.name", f'Invalid value: "{name}": a lowercase {what} must '
                                        f"consist of lower case alphanumeric characters, '-' "
                                        f"or '.', and must start and end with an alphanumeric "
                                        f"character (at most {max_len} characters)"))
    causes += label_causes(meta.get("labels"), "metadata.labels")
    annotations = meta.get("annotations")
    if annotations is not None:
        if not isinstance(annotations, dict) or not all(
            isinstance(v, str) for v in annotations.values()
        ):
            causes.append(("metadata.annotations", "Invalid value: values must be strings"))
        else:
            for key in annotations:
                causes += _qualified_name_causes(str(key), "metadata.annotations")
            if len(json.dumps(annotations)) > 256 * 1024:
                causes.append(("metadata.annotations", "Too long: must have at most 262144 "
                                                       "bytes"))
    owners = meta.get("ownerReferences") or []
    controllers = 0
    for index, ref in enumerate(owners if isinstance(owners, list) else []):
        for key in ("apiVersion", "kind", "name", "uid"):
            if not (isinstance(ref, dict) and ref.get(key)):
                causes.append((f"metadata.ownerReferences[{index}].{key}", "Required value"))
        if isinstance(ref, dict) and ref.get("controller"):
            controllers += 1
    if controllers > 1:
        causes.append(("metadata.ownerReferences", "Invalid value: Only one reference can have "
                                                   "Controller set to true"))
    return causes


@cache
def _builtin_compiler() -> Compiler:
    base = importlib_resources.files("kubernetes_validate").joinpath(
        f"kubernetes-json-schema/v{KUBE_VERSION}-local-strict")
    definitions = json.loads(base.joinpath("_definitions.json").read_text())["$defs"]
    return Compiler(definitions)


def builtin_definitions() -> dict[str, Any]:
    """The official schemas' shared definitions (`$defs`)."""
    return _builtin_compiler().definitions


@cache
def builtin_schema(api_version: str, kind: str) -> dict[str, Any] | None:
    """The official schema of a built-in kind (None when none is bundled)."""
    slug = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    base = importlib_resources.files("kubernetes_validate").joinpath(
        f"kubernetes-json-schema/v{KUBE_VERSION}-local-strict")
    try:
        schema: dict[str, Any] = json.loads(
            base.joinpath(f"{kind.lower()}-{slug}.json").read_text())
    except FileNotFoundError:
        return None
    return schema


@cache
def builtin_patch_meta(api_version: str, kind: str) -> PatchMeta | None:
    """Strategic-merge metadata of a built-in kind, from its official schema."""
    slug = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    base = importlib_resources.files("kubernetes_validate").joinpath(
        f"kubernetes-json-schema/v{KUBE_VERSION}-local-strict")
    try:
        schema = json.loads(base.joinpath(f"{kind.lower()}-{slug}.json").read_text())
    except FileNotFoundError:
        return None
    return PatchMeta(schema, _builtin_compiler().definitions)


@cache
def builtin_validator(api_version: str, kind: str) -> Check | None:
    """The compiled, cached validator of a built-in kind (None when none is bundled)."""
    slug = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    base = importlib_resources.files("kubernetes_validate").joinpath(
        f"kubernetes-json-schema/v{KUBE_VERSION}-local-strict")
    path = base.joinpath(f"{kind.lower()}-{slug}.json")
    try:
        schema = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    return _builtin_compiler().compile(schema)


@cache
def builtin_validator_without_template(api_version: str, kind: str) -> Check | None:
    """The validator of a workload kind that leaves its `spec.template` out (a settled pod
    template: validated when it was stored, see store.SettledTemplates); None when the kind
    has no pod template."""
    schema = builtin_schema(api_version, kind)
    spec = ((schema or {}).get("properties") or {}).get("spec") or {}
    name = str(spec.get("$ref", "")).rsplit("/", 1)[-1]
    definitions = builtin_definitions()
    if schema is None or "template" not in (definitions.get(name) or {}).get("properties", {}):
        return None
    without = {**definitions[name],
               "properties": {**definitions[name]["properties"], "template": {}}}
    return Compiler({**definitions, name: without}).compile(schema)


def _quantity_causes(resources: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    if not isinstance(resources, dict):
        return causes
    parsed: dict[str, dict[str, float]] = {}
    for section in ("limits", "requests"):
        values = resources.get(section) or {}
        if not isinstance(values, dict):
            continue
        for name, value in values.items():
            text = str(value)
            amount = _quantity_amount(text)
            if amount is None:
                causes.append((f"{path}.{section}[{name}]",
                               f'Invalid value: "{text}": quantities must match the regular '
                               f"expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"))
            else:
                parsed.setdefault(section, {})[name] = amount
    for name, request in parsed.get("requests", {}).items():
        limit = parsed.get("limits", {}).get(name)
        if limit is not None and request > limit:
            causes.append((f"{path}.requests", f'Invalid value: "{resources["requests"][name]}"'
                                               f": must be less than or equal to {name} limit "
                                               f'of {resources["limits"][name]}'))
    return causes


@lru_cache(maxsize=4096)
def _quantity_amount(text: str) -> float | None:
    """A quantity's amount, None when the text is not one (a function of the text alone)."""
    return parse_quantity(text) if _QUANTITY.match(text) else None


_SUFFIXES = {
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
    "n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15,
    "E": 1e18,
}


def parse_quantity(text: str) -> float:
    match = re.match(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(\D*)$", text)
    if not match:
        raise ValueError(text)
    number, suffix = match.groups()
    return float(number) * _SUFFIXES.get(suffix, 1)


_PROTOCOLS = ("SCTP", "TCP", "UDP")


def _port_causes(ports: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for index, port in enumerate(ports if isinstance(ports, list) else []):
        protocol = port.get("protocol") if isinstance(port, dict) else None
        if protocol is not None and protocol not in _PROTOCOLS:
            causes.append((f"{path}[{index}].protocol", f'Unsupported value: "{protocol}": '
                                                        'supported values: "SCTP", "TCP", "UDP"'))
    return causes


def _pod_spec_causes(spec: Any, path: str) -> list[Cause]:
    if not isinstance(spec, dict):
        return []
    causes: list[Cause] = []
    containers = spec.get("containers") or []
    if not containers:
        causes.append((f"{path}.containers", "Required value"))
    names: set[str] = set()
    volumes = {v.get("name") for v in spec.get("volumes") or [] if isinstance(v, dict)}
    for kind in ("initContainers", "containers"):
        for index, container in enumerate(spec.get(kind) or []):
            if not isinstance(container, dict):
                continue
            cpath = f"{path}.{kind}[{index}]"
            name = container.get("name", "")
            if not name or not _DNS_LABEL.match(str(name)) or len(str(name)) > 63:
                causes.append((f"{cpath}.name", f'Invalid value: "{name}": a lowercase RFC '
                                                f"1123 label must consist of lower case "
                                                f"alphanumeric characters or '-'"))
            elif name in names:
                causes.append((f"{cpath}.name", f'Duplicate value: "{name}"'))
            names.add(str(name))
            if not container.get("image"):
                causes.append((f"{cpath}.image", "Required value"))
            causes += _quantity_causes(container.get("resources"), f"{cpath}.resources")
            causes += _port_causes(container.get("ports"), f"{cpath}.ports")
            # (duplicate env names are only a warning in the real server)
            for env_index, env in enumerate(container.get("env") or []):
                if isinstance(env, dict) and not env.get("name"):
                    causes.append((f"{cpath}.env[{env_index}].name", "Required value"))
            for mount_index, mount in enumerate(container.get("volumeMounts") or []):
                if isinstance(mount, dict) and mount.get("name") not in volumes:
                    causes.append((f"{cpath}.volumeMounts[{mount_index}].name",
                                   f'Not found: "{mount.get("name")}"'))
    return causes


def _selector_matches(selector: Any, labels: Any) -> bool:
    if not isinstance(selector, dict):
        return False
    labels = labels if isinstance(labels, dict) else {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def builtin_semantic_causes(resource: Resource, obj: dict[str, Any],
                            settled: Any = None) -> list[Cause]:
    """Checks the real server makes beyond the OpenAPI schema (`settled`: a settled pod
    template of the object, whose own checks passed when it was stored)."""
    causes: list[Cause] = []
    spec = obj.get("spec")
    plural = resource.plural
    if plural in ("deployments", "replicasets", "statefulsets", "daemonsets"):
        if not isinstance(spec, dict):
            return [("spec", "Required value")]
        selector = spec.get("selector")
        template = spec.get("template") or {}
        if not selector or not (selector.get("matchLabels") or selector.get("matchExpressions")):
            causes.append(("spec.selector", "Required value"))
        elif not _selector_matches(selector, (template.get("metadata") or {}).get("labels")):
            labels = json.dumps((template.get("metadata") or {}).get("labels"))
            causes.append(("spec.template.metadata.labels",
                           f"Invalid value: {labels}: `selector` does not match template "
                           "`labels`"))
        if settled is None or template is not settled:
            causes += label_causes((template.get("metadata") or {}).get("labels"),
                                   "spec.template.metadata.labels")
            causes += _pod_spec_causes(template.get("spec"), "spec.template.spec")
        replicas = spec.get("replicas")
        if isinstance(replicas, int) and replicas < 0:
            causes.append(("spec.replicas", f"Invalid value: {replicas}: must be greater than "
                                            "or equal to 0"))
    elif plural == "pods":
        causes += _pod_spec_causes(spec, "spec")
    elif plural == "services" and isinstance(spec, dict):
        ports = spec.get("ports") or []
        causes += _port_causes(ports, "spec.ports")
        if not ports and spec.get("clusterIP") != "None" and spec.get("type") != "ExternalName":
            causes.append(("spec.ports", "Required value"))
        seen: set[str] = set()
        for index, port in enumerate(ports):
            name = port.get("name", "") if isinstance(port, dict) else ""
            if len(ports) > 1 and not name:
                causes.append((f"spec.ports[{index}].name", "Required value"))
            elif name and name in seen:
                causes.append((f"spec.ports[{index}].name", f'Duplicate value: "{name}"'))
            seen.add(name)
    elif plural == "persistentvolumeclaims" and isinstance(spec, dict):
        if not spec.get("accessModes"):
            causes.append(("spec.accessModes", "Required value"))
        storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
        if storage is None:
            causes.append(("spec.resources[storage]", "Required value"))
        causes += _quantity_causes(spec.get("resources"), "spec.resources")
    elif plural == "ingresses" and isinstance(spec, dict):
        for rule_index, rule in enumerate(spec.get("rules") or []):
            paths = ((rule or {}).get("http") or {}).get("paths") or []
            for path_index, entry in enumerate(paths):
                ppath = f"spec.rules[{rule_index}].http.paths[{path_index}]"
                if not entry.get("pathType"):
                    causes.append((f"{ppath}.pathType", "Required value: pathType must be "
                                                        "specified"))
                if not str(entry.get("path", "")).startswith("/"):
                    causes.append((f"{ppath}.path", f'Invalid value: "{entry.get("path", "")}"'
                                                    ": must be an absolute path"))
                if not entry.get("backend"):
                    causes.append((f"{ppath}.backend", "Required value"))
    elif plural in ("configmaps", "secrets"):
        encoded = ("data", "binaryData") if plural == "secrets" else ("binaryData",)
        for section in encoded:
            for key, value in (obj.get(section) or {}).items():
                try:
                    base64.b64decode(str(value), validate=True)
                except (binascii.Error, ValueError):
                    causes.append((f"{section}[{key}]", "Invalid value: illegal base64 data"))
        for section in ("data", "binaryData", "stringData"):
            for key in (obj.get(section) or {}):
                if len(key) > 253 or not _CONFIG_KEY.match(key):
                    causes.append((f"{section}[{key}]", f'Invalid value: "{key}": a valid '
                                                        "config key must consist of "
                                                        "alphanumeric characters, '-', '_' "
                                                        "or '.'"))
    return causes


@cache
def builtin_status_schema(api_version: str, kind: str) -> dict[str, Any] | None:
    """The `status` part of a built-in kind's official schema (None when none is bundled)."""
    schema = builtin_schema(api_version, kind)
    if schema is None:
        return None
    status: dict[str, Any] | None = (schema.get("properties") or {}).get("status")
    return status


@cache
def _builtin_status_validator(api_version: str, kind: str) -> Check | None:
    status = builtin_status_schema(api_version, kind)
    return None if status is None else _builtin_compiler().compile(status)


def validate_builtin_status(resource: Resource, obj: dict[str, Any]) -> list[Cause]:
    """A `/status` write of a built-in, as the real server's status strategies validate it
    (ValidateDeploymentStatusUpdate, ValidatePersistentVolumeClaimStatusUpdate, ...): the
    status. Spec and metadata are the stored object's (such a write cannot change them), so
    they are not validated again."""
    causes: list[Cause] = []
    validator = _builtin_status_validator(resource.api_version, resource.kind)
    if validator is not None and "status" in obj:
        validator(obj["status"], ("status",), causes)
    return causes


def validate_builtin(resource: Resource, obj: dict[str, Any],
                     settled: Any = None) -> list[Cause]:
    """Every cause to refuse a built-in object; `settled`: its pod template when that is a
    settled one (passed these checks when it was stored: not walked again)."""
    causes = metadata_causes(resource, obj)
    validator = None
    if settled is not None and ((obj.get("spec") or {}).get("template")) is settled:
        validator = builtin_validator_without_template(resource.api_version, resource.kind)
    if validator is None:
        settled = None
        validator = builtin_validator(resource.api_version, resource.kind)
    if validator is not None:
        validator(obj, (), causes)
    if not causes:
        causes += builtin_semantic_causes(resource, obj, settled)
    return causes


def builtin_update_causes(
    resource: Resource, old: dict[str, Any], new: dict[str, Any]
) -> list[Cause]:
    """Immutable fields of built-ins that our workloads touch."""
    causes: list[Cause] = []
    old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
    if resource.plural in ("deployments", "replicasets", "statefulsets", "daemonsets"):
        if old_spec.get("selector") != new_spec.get("selector"):
            causes.append(("spec.selector", f"Invalid value: "
                                            f"{json.dumps(new_spec.get('selector'))}: field is "
                                            "immutable"))
    elif resource.plural == "persistentvolumeclaims":
        strip: tuple[str, ...] = ("resources", "volumeAttributesClassName")
        if not old_spec.get("volumeName"):
            strip += ("volumeName",)  # set once, by the binder (the real server allows it)
        if {k: v for k, v in old_spec.items() if k not in strip} != {
            k: v for k, v in new_spec.items() if k not in strip
        }:
            causes.append(("spec", "Forbidden: spec is immutable after creation except "
                                   "resources.requests and volumeAttributesClassName for bound "
                                   "claims"))
    elif resource.plural == "services":
        if old_spec.get("clusterIP") and new_spec.get("clusterIP") not in (
            None, "", old_spec.get("clusterIP")
        ):
            causes.append(("spec.clusterIPs[0]", "Invalid value: field is immutable"))
    elif resource.plural in ("configmaps", "secrets") and old.get("immutable"):
        for section in ("data", "binaryData", "immutable"):
            if old.get(section) != new.get(section):
                causes.append((section, "Forbidden: field is immutable when `immutable` is set"))
    return causes


OBJECT_META_FIELDS = frozenset({
    "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
    "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels",
    "annotations", "ownerReferences", "finalizers", "managedFields",
})


class CustomSchema:
    """A CRD's structural schema: defaulting, pruning, validation, transition rules."""

    def __init__(self, schema: dict[str, Any] | None) -> None:
        self.schema = schema or {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        root = dict(self.schema)
        properties = dict(root.get("properties") or {})
        for key in ("apiVersion", "kind"):
            properties.setdefault(key, {"type": "string"})
        properties["metadata"] = {"type": "object"}
        root["properties"] = properties
        self.check = Compiler(crd=True).compile(root)
        self.schema = _mark_rules(clone(self.schema))
        # the schema below apiVersion, kind and metadata, which normalise() handles itself
        self._root = dict(self.schema)
        self._root["properties"] = {
            k: v for k, v in (self._root.get("properties") or {}).items()
            if k not in ("apiVersion", "kind", "metadata")
        }
        self._shapes: dict[int, _Shape] = {}

    def normalise(self, obj: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """Prune unknown fields and nulls, then apply defaults; returns pruned field paths."""
        pruned: list[str] = []
        body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
        result: dict[str, Any] = {k: obj[k] for k in ("apiVersion", "kind") if k in obj}
        meta = obj.get("metadata")
        if isinstance(meta, dict):
            pruned += [f"metadata.{k}" for k in meta if k not in OBJECT_META_FIELDS]
            result["metadata"] = {k: v for k, v in meta.items() if k in OBJECT_META_FIELDS}
        result.update(_prune_and_default(body, self._root, None, pruned, self._shapes))
        return result, pruned

    def causes(self, obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
        causes: list[Cause] = []
        self.check(obj, (), causes)
        if old is not None:
            causes += _rule_causes(self.schema, obj, old, [])
        return causes


# A field's place while pruning: (parent place, key or list index, whether an index), or None
# at the root; rendered ("spec.a[0].b") only for what is pruned.
Place = tuple[Any, Any, bool] | None


def _render(place: Place) -> str:
    parts: list[tuple[Any, bool]] = []
    while place is not None:
        place, key, index = place
        parts.append((key, index))
    text = ""
    for key, index in reversed(parts):
        text = f"{text}[{key}]" if index else f"{text}.{key}" if text else key
    return text


class _Shape:
    """What pruning and defaulting need of one schema, read once."""

    __slots__ = ("additional", "defaults", "embedded", "items", "keep_unknown", "properties",
                 "schema")

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema  # kept alive: shapes are found by the schema's id
        self.properties: dict[str, Any] = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        self.additional = additional if isinstance(additional, dict) else None
        self.keep_unknown = bool(schema.get("x-kubernetes-preserve-unknown-fields", False)
                                 or additional is True)
        self.embedded = bool(schema.get("x-kubernetes-embedded-resource", False))
        self.defaults = [(key, sub) for key, sub in self.properties.items() if "default" in sub]
        items = schema.get("items")
        self.items = items if isinstance(items, dict) else None


def _prune_and_default(value: Any, schema: dict[str, Any], place: Place, pruned: list[str],
                       shapes: dict[int, _Shape]) -> Any:
    """Drop unknown fields (unless preserved) and non-nullable nulls; fill in defaults."""
    shape = shapes.get(id(schema))
    if shape is None or shape.schema is not schema:
        shape = shapes[id(schema)] = _Shape(schema)
    if isinstance(value, dict):
        props = shape.properties
        additional = shape.additional
        result: dict[str, Any] = {}
        for key, item in value.items():
            sub = props.get(key) if key in props else additional
            if sub is None:
                if shape.keep_unknown or (
                        shape.embedded and key in ("apiVersion", "kind", "metadata")):
                    result[key] = item
                else:
                    pruned.append(_render((place, key, False)))
                continue
            if item is None and not sub.get("nullable"):
                continue
            result[key] = _prune_and_default(item, sub, (place, key, False), pruned, shapes)
        for key, sub in shape.defaults:
            if key not in result:
                result[key] = _prune_and_default(
                    clone(sub["default"]), sub, (place, key, False), pruned, shapes)
        return result
    if isinstance(value, list) and shape.items is not None:
        return [
            _prune_and_default(item, shape.items, (place, index, True), pruned, shapes)
            for index, item in enumerate(value)
        ]
    return value


_TRANSITION_RULES = {"self==oldSelf", "oldSelf==self"}


def _mark_rules(schema: Any) -> Any:
    """Annotate every sub-schema with `x-has-rules` so rule evaluation skips rule-free trees."""
    if isinstance(schema, dict):
        for key in ("properties",):
            for sub in (schema.get(key) or {}).values():
                _mark_rules(sub)
        for key in ("items", "additionalProperties"):
            if isinstance(schema.get(key), dict):
                _mark_rules(schema[key])
        schema["x-has-rules"] = _has_rules(schema)
    return schema


def _has_rules(schema: Any) -> bool:
    """Whether a schema or anything below it carries x-kubernetes-validations."""
    if isinstance(schema, dict):
        return "x-kubernetes-validations" in schema or any(
            _has_rules(value) for key, value in schema.items()
            if key in ("properties", "items", "additionalProperties") or isinstance(value, dict))
    if isinstance(schema, list):
        return any(_has_rules(item) for item in schema)
    return False


def _rule_causes(schema: dict[str, Any], new: Any, old: Any, path: list[Any]) -> list[Cause]:
    """Evaluate `self == oldSelf` rules (only on update, where both values exist)."""
    causes: list[Cause] = []
    if not schema.get("x-has-rules", True):
        return causes
    for rule in schema.get("x-kubernetes-validations") or []:
        expression = re.sub(r"\s+", "", str(rule.get("rule", "")))
        if expression in _TRANSITION_RULES and new != old:
            message = rule.get("message") or f"failed rule: {rule.get('rule')}"
            target = field_path(path) + str(rule.get("fieldPath") or "")
            causes.append((target, f'Invalid value: "{_type_name(new)}": {message}'))
    if isinstance(new, dict) and isinstance(old, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if key in new and key in old and (path or key != "metadata"):
                causes += _rule_causes(sub, new[key], old[key], [*path, key])
    if (isinstance(new, list) and isinstance(old, list) and isinstance(schema.get("items"), dict)
            and schema.get("x-kubernetes-list-type") == "map"):
        keys = schema.get("x-kubernetes-list-map-keys") or []
        olds = {tuple(o.get(k) for k in keys): o for o in old if isinstance(o, dict)}
        for index, item in enumerate(new):
            if isinstance(item, dict):
                previous = olds.get(tuple(item.get(k) for k in keys))
                if previous is not None:
                    causes += _rule_causes(schema["items"], item, previous, [*path, index])
    return causes


def _type_name(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean",
             int: "integer", float: "number"}
    return names.get(type(value), "null")
