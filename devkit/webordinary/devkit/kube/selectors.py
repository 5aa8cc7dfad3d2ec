"""Label and field selectors as the API server parses and matches them."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from webordinary.devkit.kube.errors import bad_request

_KEY = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                  r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


@dataclass(frozen=True)
class Requirement:
    """One clause of a label selector: key, operator, values."""

    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!", "gt", "lt"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        has = self.key in labels
        value = labels.get(self.key)
        match self.op:
            case "=" | "in":
                return has and value in self.values
            case "!=" | "notin":
                return not has or value not in self.values
            case "exists":
                return has
            case "!":
                return not has
            case "gt" | "lt":
                try:
                    number = int(value or "")
                except ValueError:
                    return False
                bound = int(self.values[0])
                return number > bound if self.op == "gt" else number < bound
        return False  # pragma: no cover


def _split_top(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts: list[str] = []
    depth = 0
    current = ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return parts


_SET = re.compile(r"^\s*(?P<key>[^\s!=(),]+)\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)\s*$")
_EQ = re.compile(r"^\s*(?P<key>[^\s!=<>(),]+)\s*(?P<op>==|=|!=|>|<)\s*(?P<value>[^\s,()]*)\s*$")
_EXISTS = re.compile(r"^\s*(?P<neg>!?)\s*(?P<key>[^\s!=<>(),]+)\s*$")


def _check_key(key: str, selector: str) -> None:
    if not _KEY.match(key) or len(key.rsplit("/", 1)[-1]) > 63:
        raise bad_request(f'unable to parse requirement: invalid label key "{key}" '
                          f'in selector "{selector}"')


def _check_value(value: str, selector: str) -> None:
    if len(value) > 63 or not _VALUE.match(value):
        raise bad_request(f'unable to parse requirement: invalid label value: "{value}" '
                          f'in selector "{selector}"')


def parse_label_selector(selector: str) -> list[Requirement]:
    """Parse `a=b,c!=d,e in (f,g),h notin (i),j,!k,l>3`; a 400 on anything else."""
    if not selector.strip():
        return []
    requirements: list[Requirement] = []
    for clause in _split_top(selector):
        if m := _SET.match(clause):
            values = tuple(v.strip() for v in m["values"].split(",") if v.strip())
            _check_key(m["key"], selector)
            for value in values:
                _check_value(value, selector)
            requirements.append(Requirement(m["key"], m["op"], values))
        elif m := _EQ.match(clause):
            _check_key(m["key"], selector)
            op = {"==": "=", "=": "=", "!=": "!=", ">": "gt", "<": "lt"}[m["op"]]
            if op in ("gt", "lt") and not re.fullmatch(r"-?\d+", m["value"]):
                raise bad_request(f'unable to parse requirement: for "{m["op"]}" operator, '
                                  f'the value must be an integer in selector "{selector}"')
            _check_value(m["value"], selector)
            requirements.append(Requirement(m["key"], op, (m["value"],)))
        elif m := _EXISTS.match(clause):
            _check_key(m["key"], selector)
            requirements.append(Requirement(m["key"], "!" if m["neg"] else "exists"))
        else:
            raise bad_request(f'unable to parse requirement: found "{clause.strip()}", '
                              f'expected a label selector clause in "{selector}"')
    return requirements


def labels_match(requirements: list[Requirement], labels: Mapping[str, str] | None) -> bool:
    labels = labels or {}
    return all(requirement.matches(labels) for requirement in requirements)


FieldGetter = Callable[[Mapping[str, Any]], str]


def _path_getter(path: str) -> FieldGetter:
    keys = path.split(".")

    def get(obj: Mapping[str, Any]) -> str:
        current: Any = obj
        for key in keys:
            if not isinstance(current, Mapping):
                return ""
            current = current.get(key)
        if current is None:
            return ""
        if isinstance(current, bool):
            return "true" if current else "false"
        return str(current)

    return get


COMMON_FIELDS = ("metadata.name", "metadata.namespace")

EXTRA_FIELDS: dict[str, tuple[str, ...]] = {
    "pods": ("spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
             "spec.serviceAccountName", "spec.hostNetwork", "status.phase", "status.podIP",
             "status.nominatedNodeName"),
    "events": ("involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
               "involvedObject.uid", "involvedObject.apiVersion",
               "involvedObject.resourceVersion", "involvedObject.fieldPath", "reason",
               "reportingComponent", "source", "type"),
    "secrets": ("type",),
    "namespaces": ("status.phase",),
    "nodes": ("spec.unschedulable",),
    "replicasets": ("status.replicas",),
    "jobs": ("status.successful",),
}


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    negate: bool
    value: str
    getter: FieldGetter

    def matches(self, obj: Mapping[str, Any]) -> bool:
        equal = self.getter(obj) == self.value
        return not equal if self.negate else equal


def parse_field_selector(selector: str, plural: str) -> list[FieldRequirement]:
    """Parse `metadata.name=x,metadata.namespace!=y`; unsupported fields are a 400."""
    if not selector.strip():
        return []
    supported = COMMON_FIELDS + EXTRA_FIELDS.get(plural, ())
    result: list[FieldRequirement] = []
    for clause in selector.split(","):
        m = re.match(r"^\s*([^\s!=]+)\s*(==|=|!=)\s*(.*?)\s*$", clause)
        if not m:
            raise bad_request(f'invalid selector: \'{selector}\'; can\'t understand '
                              f'\'{clause}\'')
        field, op, value = m.groups()
        if field == "source" and plural == "events":
            getter = _path_getter("source.component")
        elif field in supported:
            getter = _path_getter(field)
        else:
            raise bad_request(f'"{field}" is not a known field selector: only '
                              f'"{", ".join(supported)}"')
        result.append(FieldRequirement(field, op == "!=", value, getter))
    return result


def fields_match(requirements: list[FieldRequirement], obj: Mapping[str, Any]) -> bool:
    return all(requirement.matches(obj) for requirement in requirements)
