"""Built-in defaults the real API server fills in, for the kinds our operator creates.

Code that compares desired children with live ones must cope with these, as on a real cluster.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
from typing import Any

from webordinary.devkit.kube.quantity import canonical
from webordinary.devkit.kube.resources import Resource

_ips = itertools.count(1)


def _allocate_ip() -> str:
    number = next(_ips)
    return f"10.96.{(number // 250) % 250}.{number % 250 + 1}"


def canonical_resources(resources: Any) -> None:
    """Requests and limits in the canonical quantity form (invalid ones are left for
    validation to report)."""
    if not isinstance(resources, dict):
        return
    for section in ("requests", "limits"):
        values = resources.get(section)
        if not isinstance(values, dict):
            continue
        for name, value in values.items():
            if isinstance(value, str | int | float) and not isinstance(value, bool):
                with contextlib.suppress(ValueError):
                    values[name] = canonical(value)


def _container_defaults(container: dict[str, Any]) -> None:
    image = str(container.get("image", ""))
    tag = image.rsplit("/", 1)[-1]
    if "imagePullPolicy" not in container:
        latest = "@" not in image and (":" not in tag or tag.endswith(":latest"))
        container["imagePullPolicy"] = "Always" if latest else "IfNotPresent"
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    container.setdefault("resources", {})
    canonical_resources(container["resources"])
    for port in container.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
    for env in container.get("env") or []:
        ref = (env.get("valueFrom") or {}).get("fieldRef") if isinstance(env, dict) else None
        if isinstance(ref, dict):
            ref.setdefault("apiVersion", "v1")
    for probe_name in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = container.get(probe_name)
        if isinstance(probe, dict):
            probe.setdefault("timeoutSeconds", 1)
            probe.setdefault("periodSeconds", 10)
            probe.setdefault("successThreshold", 1)
            probe.setdefault("failureThreshold", 3)
            http = probe.get("httpGet")
            if isinstance(http, dict):
                http.setdefault("scheme", "HTTP")


def pod_spec_defaults(spec: Any) -> None:
    if not isinstance(spec, dict):
        return
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for kind in ("initContainers", "containers"):
        for container in spec.get(kind) or []:
            if isinstance(container, dict):
                _container_defaults(container)
    for volume in spec.get("volumes") or []:
        if not isinstance(volume, dict):
            continue
        for source in ("secret", "configMap"):
            if isinstance(volume.get(source), dict):
                volume[source].setdefault("defaultMode", 420)


def apply_builtin_defaults(
    resource: Resource, obj: dict[str, Any], old: dict[str, Any] | None,
    settled: Any = None,
) -> None:
    """Fill in server-side defaults in place (create, and update with the old object).
    `settled`: the object's pod template when it is a settled one (see store.SettledTemplates),
    left as it is."""
    spec = obj.get("spec")
    plural = resource.plural
    if plural == "deployments" and isinstance(spec, dict):
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        strategy = spec.setdefault("strategy", {"type": "RollingUpdate"})
        if isinstance(strategy, dict):
            strategy.setdefault("type", "RollingUpdate")
            if strategy["type"] == "RollingUpdate":
                strategy.setdefault("rollingUpdate", {"maxUnavailable": "25%", "maxSurge": "25%"})
        template = spec.get("template")
        if isinstance(template, dict) and template is not settled:
            template.setdefault("metadata", {})
            pod_spec_defaults(template.get("spec"))
    elif plural in ("statefulsets", "replicasets", "daemonsets", "jobs") and isinstance(
            spec, dict):
        template = spec.get("template")
        if isinstance(template, dict) and template is not settled:
            pod_spec_defaults(template.get("spec"))
    elif plural == "pods":
        pod_spec_defaults(spec)
    elif plural == "services" and isinstance(spec, dict):
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        old_spec = (old or {}).get("spec") or {}
        for allocated in ("clusterIP", "clusterIPs"):
            if allocated not in spec and allocated in old_spec:
                spec[allocated] = old_spec[allocated]
        if spec["type"] != "ExternalName":
            if "clusterIP" not in spec:
                spec["clusterIP"] = _allocate_ip()
            spec.setdefault("clusterIPs", [spec["clusterIP"]])
            spec.setdefault("ipFamilies", ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
            spec.setdefault("internalTrafficPolicy", "Cluster")
        for port in spec.get("ports") or []:
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")
                if "port" in port:
                    port.setdefault("targetPort", port["port"])
    elif plural == "persistentvolumeclaims" and isinstance(spec, dict):
        spec.setdefault("volumeMode", "Filesystem")
        canonical_resources(spec.get("resources"))
    elif plural == "serviceaccounts" or plural == "configmaps":
        pass
    elif plural == "secrets":
        obj.setdefault("type", "Opaque")
        string_data = obj.pop("stringData", None)
        if isinstance(string_data, dict):
            data = obj.setdefault("data", {})
            for key, value in string_data.items():
                data[key] = base64.b64encode(str(value).encode()).decode()
    elif plural == "networkpolicies" and isinstance(spec, dict):
        if "policyTypes" not in spec:
            types = ["Ingress"]
            if "egress" in spec:
                types.append("Egress")
            spec["policyTypes"] = types
        for rule_kind in ("ingress", "egress"):
            for rule in spec.get(rule_kind) or []:
                for port in (rule or {}).get("ports") or []:
                    if isinstance(port, dict):
                        port.setdefault("protocol", "TCP")
