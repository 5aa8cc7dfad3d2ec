"""Render the chart offline (helm-python-sdk: Helm's own Go library) into parsed objects."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "helm" / "webordinary"
RELEASE = "wo"
NAMESPACE = "webordinary"
KUBE_VERSIONS = ("1.29.0", "1.33.0")

# Every optional feature switched on at once.
FULL: dict[str, Any] = {
    "operator": {
        "clusterWide": True,
        "podDisruptionBudget": {"enabled": True},
        "serviceAccount": {"iamRoleArn": "arn:aws:iam::123456789012:role/webordinary-operator"},
        "extraEnv": [{"name": "WEBORDINARY_OPERATOR_AWS_MAX_ATTEMPTS", "value": "7"}],
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ops"}],
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "replicas": 2,
        "logFormat": "json",
    },
    "hermes": {
        "persistence": {"enabled": True, "storageClassName": "gp3"},
        "smtp": {"enabled": True, "outboundHost": "mail.internal"},
        "inboundQueueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/webordinary-inbound",
        "s3Bucket": "webordinary-inbound-mail",
        "logFormat": "json",
    },
    "editor": {
        "awsIdentity": "irsa",
        "iamRoleArnTemplate": "arn:aws:iam::123456789012:role/webordinary-editor-{environment}",
        "image": {"digest": "sha256:" + "a" * 64},
        "messagesApiUrl": "http://wo-webordinary-messages-api:8080",
        "placement": {
            "nodeSelector": {"workload": "editors"},
            "tolerations": [{"key": "editors", "operator": "Exists", "effect": "NoSchedule"}],
            "priorityClassName": "editors",
            "topologySpreadConstraints": [{"maxSkew": 1,
                                           "topologyKey": "topology.kubernetes.io/zone",
                                           "whenUnsatisfiable": "ScheduleAnyway"}],
        },
    },
    "gateway": {
        "replicas": 3,
        "ingress": {"albGroupName": "previews", "host": "preview.example.com",
                    "annotations": {"alb.ingress.kubernetes.io/scheme": "internal"}},
        "networkPolicy": {"sourceCidrs": ["10.0.0.0/16"]},
        "extraEnv": [{"name": "WEBORDINARY_GATEWAY_READ_TIMEOUT_SECONDS", "value": "60"}],
    },
    "storageClass": {"create": True, "fileSystemId": "fs-0123456789abcdef0"},
    "metrics": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}},
    "environments": {"namespace": "tenants"},
    "dev": {"moto": {"enabled": True}, "mailpit": {"enabled": True},
            "anthropicSecret": {"create": True}, "messagesApi": {"enabled": True}},
}


# What every install must give (the default editor.awsIdentity podIdentity needs them); a test's
# values are merged over these.
REQUIRED: dict[str, Any] = {
    "aws": {"eksClusterName": "prod"},
    "editor": {"podIdentityRoleArn": "arn:aws:iam::123456789012:role/webordinary-editor"},
}


def merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` deep-merged onto `base` (as Helm merges values files)."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


@cache
def _chart() -> Any:
    import helm_python

    return helm_python.Chart.load(CHART)


@dataclass(frozen=True)
class Rendered:
    """One render: objects by (kind, name) plus the NOTES text."""

    objects: tuple[dict[str, Any], ...]
    notes: str

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        found = [o for o in self.all(kind) if o["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}: " + ", ".join(
            f"{o['kind']}/{o['metadata']['name']}" for o in self.objects
        )
        return found[0]

    def has(self, kind: str, name: str) -> bool:
        return any(o["metadata"]["name"] == name for o in self.all(kind))

    def containers(self) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        for deployment in self.all("Deployment"):
            for container in deployment["spec"]["template"]["spec"]["containers"]:
                yield deployment, container


def render(
    values: dict[str, Any] | None = None, *, name: str = RELEASE, namespace: str = NAMESPACE,
    kube_version: str | None = None, bare: bool = False,
) -> Rendered:
    """Render like `helm install name chart -n namespace -f values` would (no cluster), with the
    REQUIRED values unless `bare`; `kube_version` like `helm template --kube-version` (default:
    the Helm library's own)."""
    given = values or {}
    return _render(json.dumps(given if bare else merged(REQUIRED, given), sort_keys=True), name,
                   namespace, kube_version)


@cache
def _render(values: str, name: str, namespace: str, kube_version: str | None) -> Rendered:
    """Cached: tests read the objects, never change them."""
    if kube_version is None:
        manifests = _chart().render(json.loads(values), name=name, namespace=namespace,
                                    is_install=True)
    else:
        # Chart.render() has no kube_version (lint() has); the native call takes it.
        from helm_python import _native

        options = {"name": name, "namespace": namespace, "is_install": True,
                   "kube_version": kube_version}
        manifests = json.loads(_native.call_string(
            "helm_render", _chart()._raw(), values, json.dumps(options)))
    objects: list[dict[str, Any]] = []
    notes = ""
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            notes = text
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                objects.append(doc)
    return Rendered(tuple(objects), notes)


def fullname(component: str | None = None, release: str = RELEASE) -> str:
    """Like the chart's webordinary.fullname: the release name alone if it contains the chart's."""
    base = release if "webordinary" in release else f"{release}-webordinary"
    return f"{base}-{component}" if component else base


def config_env(rendered: Rendered, component: str, release: str = RELEASE) -> dict[str, str]:
    """The environment a component's container gets: its ConfigMap plus literal env entries."""
    deployment = rendered.get("Deployment", fullname(component, release))
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        config_map = rendered.get("ConfigMap", source["configMapRef"]["name"])
        env.update(config_map.get("data", {}))
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = entry["value"]
    return env


def ci_values() -> dict[str, dict[str, Any]]:
    """The chart's ci/*-values.yaml files (chart-testing convention), by file name."""
    return {
        path.name: yaml.safe_load(path.read_text()) or {}
        for path in sorted((CHART / "ci").glob("*-values.yaml"))
    }
