"""Specs a compromised Hermes (or a careless SRE) could write are refused by the operator with
InvalidSpec naming the field, even where no admission policy runs: no child is built from them."""

from __future__ import annotations

from typing import Any

from tests.integration.operator.conftest import (
    NAMESPACE,
    Harness,
    condition,
    is_reconciled,
    spec_for,
    wait_for,
)
from webordinary.contracts import naming


def secret(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels or {}},
            "stringData": {"token": "t0ken"}}


def git(name: str) -> dict[str, Any]:
    return {"url": "https://github.com/ameliastamps/website.git",
            "credentialsSecretRef": {"name": name}}


HOSTILE = {
    "image": ({"editor": {"image": "evil.example/miner:latest"}}, "spec.editor.image"),
    "node-options": ({"editor": {"env": [{"name": "NODE_OPTIONS", "value": "--require /x"}]}},
                     "spec.editor.env"),
    "npm-config": ({"editor": {"env": [{"name": "npm_config_registry", "value": "http://x"}]}},
                   "spec.editor.env"),
    "huge": ({"editor": {"resources": {"limits": {"memory": "999Gi"}}}},
             "spec.editor.resources.limits"),
    "gpu": ({"editor": {"resources": {"requests": {"nvidia.com/gpu": "1"}}}},
            "spec.editor.resources.requests"),
    "platform-secret": ({"repository": git("anthropic-api-key")},
                        "spec.repository.credentialsSecretRef"),
    "foreign-secret": ({"repository": git("otherclient-git")},
                       "spec.repository.credentialsSecretRef"),
    "missing-secret": ({"repository": git("nowhere")}, "spec.repository.credentialsSecretRef"),
}


def test_hostile_specs_get_invalid_spec_and_no_children(harness: Harness) -> None:
    api = harness.api
    for body in (secret("anthropic-api-key"),
                 secret("otherclient-git", {"webordinary.dev/client": "otherclient"}),
                 secret("ameliastamps-git", {"webordinary.dev/client": "ameliastamps"})):
        api.call("POST", f"/api/v1/namespaces/{NAMESPACE}/secrets", body)
    with harness.run_operator(drift_interval_seconds=300.0, drift_initial_delay_seconds=None):
        for case, (extra, _) in HOSTILE.items():
            api.create_ee(f"ameliastamps-website-{case}", spec_for(case, **extra))

        for case, (_, field) in HOSTILE.items():
            name = f"ameliastamps-website-{case}"

            def invalid(name: str = name) -> dict[str, Any] | None:
                cond = condition(api.ee(name), "Ready")
                return cond if cond and cond["reason"] == "InvalidSpec" else None

            cond = wait_for(invalid, what=f"InvalidSpec for {case}")
            assert cond["message"].startswith(field), (case, cond["message"])
            assert api.child("/apis/apps/v1", "deployments", f"{name}-editor") is None, case
            assert api.child("/api/v1", "serviceaccounts", f"{name}-editor") is None, case

        # The client's own, labelled Secret is fine; fixing the spec recovers without restart.
        name = "ameliastamps-website-foreign-secret"
        api.patch_ee(name, {"spec": {"repository": git("ameliastamps-git")}})
        wait_for(lambda: is_reconciled(api.ee(name)),
                 what="reconciled with the client's own Secret")
        deployment = api.child("/apis/apps/v1", "deployments", f"{name}-editor")
        refs = [e["valueFrom"]["secretKeyRef"]["name"]
                for c in deployment["spec"]["template"]["spec"]["containers"]
                for e in c.get("env", [])
                if "valueFrom" in e and "secretKeyRef" in e["valueFrom"]]
        assert "ameliastamps-git" in refs
    # Only the fixed environment got queues.
    assert harness.queue_names() == sorted(
        naming.queue_names("ameliastamps", "website", "foreign-secret").values())
