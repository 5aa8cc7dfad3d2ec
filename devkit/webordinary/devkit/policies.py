"""The chart's ValidatingAdmissionPolicies in the local emulator, as `helm install` puts them
on a cluster: rendered from helm/webordinary by Helm's own engine (helm-python-sdk, a
development dependency), with Hermes and the gateway each given a token the emulator maps to
their ServiceAccount's user, so what they may write is what a cluster would let them write."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiohttp
import yaml

CHART: Final = Path(__file__).resolve().parents[3] / "helm" / "webordinary"
KUBE_VERSION: Final = "1.33.0"  # the policies need >= 1.30
PLURALS: Final = {"ValidatingAdmissionPolicy": "validatingadmissionpolicies",
                  "ValidatingAdmissionPolicyBinding": "validatingadmissionpolicybindings"}


@dataclass(frozen=True)
class Identities:
    """Bearer token -> user, for the emulator and the components that present them."""

    hermes_token: str
    gateway_token: str
    users: dict[str, str]


def render(release: str, namespace: str, values: dict[str, Any]) -> list[dict[str, Any]]:
    """The chart's objects for one release, as `helm template --kube-version` gives them."""
    import helm_python
    from helm_python import _native

    chart = helm_python.Chart.load(CHART)
    options = {"name": release, "namespace": namespace, "is_install": True,
               "kube_version": KUBE_VERSION}
    manifests = json.loads(_native.call_string(
        "helm_render", chart._raw(), json.dumps(values), json.dumps(options)))
    return [doc for path, text in sorted(manifests.items()) if not path.endswith("NOTES.txt")
            for doc in yaml.safe_load_all(text) if doc]


def service_account_user(objects: list[dict[str, Any]], component: str, namespace: str) -> str:
    (account,) = [o for o in objects if o["kind"] == "ServiceAccount" and (
        o["metadata"].get("labels") or {}).get("app.kubernetes.io/component") == component]
    return f"system:serviceaccount:{namespace}:{account['metadata']['name']}"


async def install(api: str, release: str, namespace: str,
                  values: dict[str, Any]) -> tuple[Identities, list[str]]:
    """POST the policies and bindings; returns the identities and the policies' names."""
    objects = render(release, namespace, values)
    identities = Identities(
        secrets.token_urlsafe(16), secrets.token_urlsafe(16), {})
    identities.users[identities.hermes_token] = service_account_user(objects, "hermes", namespace)
    identities.users[identities.gateway_token] = service_account_user(objects, "gateway",
                                                                      namespace)
    installed = []
    async with aiohttp.ClientSession() as client:
        for obj in objects:
            plural = PLURALS.get(obj["kind"])
            if plural is None:
                continue
            url = f"{api}/apis/admissionregistration.k8s.io/v1/{plural}"
            async with client.post(url, json=obj) as response:
                if response.status not in (200, 201, 409):
                    raise RuntimeError(f"installing {obj['kind']} {obj['metadata']['name']}: "
                                       f"HTTP {response.status} {await response.text()}")
            if obj["kind"] == "ValidatingAdmissionPolicy":
                installed.append(obj["metadata"]["name"])
    if not installed:
        raise RuntimeError("the chart rendered no ValidatingAdmissionPolicy")
    return identities, installed
