"""Which resources the emulator serves: built-ins and resources registered from CRDs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass
class Resource:
    """One served resource (group/version/plural) and how the API treats it."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    status: bool = False  # has a status subresource
    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    custom: bool = False
    schema: dict[str, Any] | None = None  # openAPIV3Schema of a custom resource
    printer_columns: list[dict[str, Any]] = field(default_factory=list)
    scale: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if not self.singular:
            self.singular = self.kind.lower()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def storage_key(self) -> tuple[str, str]:
        """Objects are shared by every served version of a group/plural."""
        return (self.group, self.plural)

    @property
    def qualified(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


def _r(gv: str, plural: str, kind: str, namespaced: bool = True, status: bool = False,
       short: tuple[str, ...] = (), cats: tuple[str, ...] = ()) -> Resource:
    group, _, version = gv.rpartition("/")
    return Resource(group, version, plural, kind, namespaced, status, short_names=short,
                    categories=cats)


_ALL = ("all",)

BUILTINS: tuple[Resource, ...] = (
    _r("v1", "namespaces", "Namespace", False, True, ("ns",)),
    _r("v1", "pods", "Pod", True, True, ("po",), _ALL),
    _r("v1", "services", "Service", True, True, ("svc",), _ALL),
    _r("v1", "configmaps", "ConfigMap", short=("cm",)),
    _r("v1", "secrets", "Secret"),
    _r("v1", "serviceaccounts", "ServiceAccount", short=("sa",)),
    _r("v1", "persistentvolumeclaims", "PersistentVolumeClaim", True, True, ("pvc",)),
    _r("v1", "persistentvolumes", "PersistentVolume", False, True, ("pv",)),
    _r("v1", "events", "Event", short=("ev",)),
    _r("v1", "endpoints", "Endpoints", short=("ep",)),
    _r("v1", "nodes", "Node", False, True, ("no",)),
    _r("v1", "limitranges", "LimitRange", short=("limits",)),
    _r("v1", "resourcequotas", "ResourceQuota", True, True, ("quota",)),
    _r("apps/v1", "deployments", "Deployment", True, True, ("deploy",), _ALL),
    _r("apps/v1", "statefulsets", "StatefulSet", True, True, ("sts",), _ALL),
    _r("apps/v1", "replicasets", "ReplicaSet", True, True, ("rs",), _ALL),
    _r("apps/v1", "daemonsets", "DaemonSet", True, True, ("ds",), _ALL),
    _r("batch/v1", "jobs", "Job", True, True, (), _ALL),
    _r("batch/v1", "cronjobs", "CronJob", True, True, ("cj",), _ALL),
    _r("discovery.k8s.io/v1", "endpointslices", "EndpointSlice"),
    _r("networking.k8s.io/v1", "ingresses", "Ingress", True, True, ("ing",)),
    _r("networking.k8s.io/v1", "ingressclasses", "IngressClass", False),
    _r("networking.k8s.io/v1", "networkpolicies", "NetworkPolicy", short=("netpol",)),
    _r("rbac.authorization.k8s.io/v1", "roles", "Role"),
    _r("rbac.authorization.k8s.io/v1", "rolebindings", "RoleBinding"),
    _r("rbac.authorization.k8s.io/v1", "clusterroles", "ClusterRole", False),
    _r("rbac.authorization.k8s.io/v1", "clusterrolebindings", "ClusterRoleBinding", False),
    _r("coordination.k8s.io/v1", "leases", "Lease"),
    _r("policy/v1", "poddisruptionbudgets", "PodDisruptionBudget", True, True, ("pdb",)),
    _r("autoscaling/v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", True, True,
       ("hpa",), _ALL),
    _r("storage.k8s.io/v1", "storageclasses", "StorageClass", False, short=("sc",)),
    _r("events.k8s.io/v1", "events", "Event", short=("ev",)),
    _r("apiextensions.k8s.io/v1", "customresourcedefinitions", "CustomResourceDefinition",
       False, True, ("crd", "crds")),
    _r("admissionregistration.k8s.io/v1", "validatingadmissionpolicies",
       "ValidatingAdmissionPolicy", False, True),
    _r("admissionregistration.k8s.io/v1", "validatingadmissionpolicybindings",
       "ValidatingAdmissionPolicyBinding", False),
)


def resources_from_crd(crd: dict[str, Any]) -> list[Resource]:
    """Every served version of a CustomResourceDefinition as a Resource."""
    spec = crd.get("spec", {})
    names = spec.get("names", {})
    result: list[Resource] = []
    for version in spec.get("versions", []):
        if not version.get("served", True):
            continue
        subresources = version.get("subresources") or spec.get("subresources") or {}
        schema = (version.get("schema") or spec.get("validation") or {}).get("openAPIV3Schema")
        result.append(Resource(
            group=spec["group"],
            version=version["name"],
            plural=names["plural"],
            kind=names["kind"],
            namespaced=spec.get("scope", "Namespaced") == "Namespaced",
            status="status" in subresources,
            singular=names.get("singular") or names["kind"].lower(),
            short_names=tuple(names.get("shortNames", ())),
            categories=tuple(names.get("categories", ())),
            custom=True,
            schema=schema,
            printer_columns=list(version.get("additionalPrinterColumns", ())),
            scale=subresources.get("scale"),
        ))
    return result
