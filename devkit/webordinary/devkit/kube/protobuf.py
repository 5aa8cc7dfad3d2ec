"""Just enough of Kubernetes' protobuf encoding to read what `kubectl create <generator>`
sends (namespace, configmap, secret, serviceaccount); everything else stays JSON-only.

A protobuf body is `k8s\\x00` + runtime.Unknown{typeMeta{apiVersion, kind}, raw}; `raw` is the
object's message. Field numbers come from k8s.io/api's generated.proto files.
"""

from __future__ import annotations

import base64
from typing import Any

from webordinary.devkit.kube.errors import ApiError

MAGIC = b"k8s\x00"
PROTOBUF = "application/vnd.kubernetes.protobuf"

# field number -> (json name, kind): "str", "int", "bool", "bytes", "map", "bytesmap",
# "strs" (repeated string), or a nested message name from _MESSAGES.
_Fields = dict[int, tuple[str, str]]
_MESSAGES: dict[str, _Fields] = {
    "ObjectMeta": {1: ("name", "str"), 2: ("generateName", "str"), 3: ("namespace", "str"),
                   5: ("uid", "str"), 6: ("resourceVersion", "str"), 7: ("generation", "int"),
                   11: ("labels", "map"), 12: ("annotations", "map"),
                   14: ("finalizers", "strs")},
    "Namespace": {1: ("metadata", "ObjectMeta"), 2: ("spec", "NamespaceSpec")},
    "NamespaceSpec": {1: ("finalizers", "strs")},
    "ConfigMap": {1: ("metadata", "ObjectMeta"), 2: ("data", "map"),
                  3: ("binaryData", "bytesmap"), 4: ("immutable", "bool")},
    "Secret": {1: ("metadata", "ObjectMeta"), 2: ("data", "bytesmap"), 3: ("type", "str"),
               4: ("stringData", "map"), 5: ("immutable", "bool")},
    "ServiceAccount": {1: ("metadata", "ObjectMeta"),
                       4: ("automountServiceAccountToken", "bool")},
}


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) pairs: varints as int, length-delimited as bytes."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            out.append((number, value))
        elif wire == 2:
            length, pos = _varint(data, pos)
            out.append((number, data[pos:pos + length]))
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
    return out


def _message(data: bytes, name: str) -> dict[str, Any]:
    spec = _MESSAGES[name]
    result: dict[str, Any] = {}
    for number, value in _fields(data):
        if number not in spec:
            continue
        key, kind = spec[number]
        if kind == "str" and isinstance(value, bytes):
            if value:
                result[key] = value.decode()
        elif kind == "int" and isinstance(value, int):
            if value:
                result[key] = value
        elif kind == "bool" and isinstance(value, int):
            result[key] = bool(value)
        elif kind == "strs" and isinstance(value, bytes):
            result.setdefault(key, []).append(value.decode())
        elif kind in ("map", "bytesmap") and isinstance(value, bytes):
            entry = dict(_fields(value))
            raw_key, raw_value = entry.get(1, b""), entry.get(2, b"")
            assert isinstance(raw_key, bytes)
            assert isinstance(raw_value, bytes)
            text = (base64.b64encode(raw_value).decode() if kind == "bytesmap"
                    else raw_value.decode())
            result.setdefault(key, {})[raw_key.decode()] = text
        elif isinstance(value, bytes) and kind in _MESSAGES:
            result[key] = _message(value, kind)
    return result


def decode(body: bytes) -> dict[str, Any]:
    """The JSON form of a protobuf-encoded object, or a 415 for kinds not covered here."""
    try:
        if not body.startswith(MAGIC):
            raise ValueError("missing the k8s protobuf prefix")
        envelope = dict(_fields(body[len(MAGIC):]))
        type_meta = envelope.get(1, b"")
        raw = envelope.get(2, b"")
        assert isinstance(type_meta, bytes)
        assert isinstance(raw, bytes)
        meta = {number: value for number, value in _fields(type_meta)}
        api_version = meta.get(1, b"")
        kind = meta.get(2, b"")
        assert isinstance(api_version, bytes)
        assert isinstance(kind, bytes)
    except (ValueError, AssertionError) as exc:
        raise ApiError(400, "BadRequest", f"cannot decode the protobuf body: {exc}") from exc
    name = kind.decode()
    if name not in _MESSAGES or name.endswith("Spec") or name == "ObjectMeta":
        raise ApiError(415, "UnsupportedMediaType",
                       f"this emulator decodes protobuf only for Namespace, ConfigMap, Secret "
                       f"and ServiceAccount (got {name or 'unknown'}): send JSON")
    try:
        obj = _message(raw, name)
    except (ValueError, AssertionError, UnicodeDecodeError) as exc:
        raise ApiError(400, "BadRequest", f"cannot decode the protobuf {name}: {exc}") from exc
    return {"apiVersion": api_version.decode(), "kind": name, **obj}
