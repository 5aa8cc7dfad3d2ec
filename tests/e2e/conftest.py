"""Real-cluster fixtures (kind or EKS): install the chart once per session, clean up after.

Runs only with WEBORDINARY_E2E=1, a reachable kubeconfig context and `helm` on PATH; everything
else is skipped with the reason. Knobs (environment variables):

- WEBORDINARY_E2E_VALUES: values file (default: helm/webordinary/ci/kind-values.yaml, which needs
  the images built and loaded: `kind load docker-image webordinary/{operator,hermes,editor}:dev`)
- WEBORDINARY_E2E_CONTEXT: kubeconfig context (default: the current one)
- WEBORDINARY_E2E_STORAGE_CLASS: StorageClass of the workspaces (default: kind's `standard`; its
  local-path provisioner cannot bind ReadWriteMany, which Ready does not wait for; EKS: efs-sc)
- WEBORDINARY_E2E_KEEP=1: keep the namespace and release for debugging
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "webordinary"
RELEASE = "webordinary"


def _why_not() -> str | None:
    """None when a real cluster is available, else why the suite is skipped."""
    if os.environ.get("WEBORDINARY_E2E") != "1":
        return "real-cluster suite: set WEBORDINARY_E2E=1 with a kind/EKS kubeconfig to run it"
    if shutil.which("helm") is None:
        return "real-cluster suite: the helm binary is not on PATH"
    try:
        from kubernetes import client, config

        config.load_kube_config(context=os.environ.get("WEBORDINARY_E2E_CONTEXT"))
        client.VersionApi().get_code(_request_timeout=5)
    except Exception as error:
        return f"real-cluster suite: no reachable Kubernetes cluster ({error})"
    return None


@pytest.fixture(scope="session", autouse=True)
def _real_cluster_only() -> None:
    reason = _why_not()
    if reason:
        pytest.skip(reason)


def wait_for[T](what: str, probe: Callable[[], T | None], timeout: float = 180.0,
                interval: float = 2.0) -> T:
    """Poll until `probe` returns something truthy; fail with `what` on timeout."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except Exception as error:
            last = error
        else:
            if last:
                return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


@dataclass(frozen=True)
class Install:
    namespace: str
    release: str
    api: Any  # kubernetes.client.ApiClient

    def kubectl(self, *args: str, timeout: float = 60) -> str:
        context = os.environ.get("WEBORDINARY_E2E_CONTEXT")
        command = ["kubectl", *(["--context", context] if context else []), "-n",
                   self.namespace, *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              check=False)
        assert done.returncode == 0, f"{' '.join(command)}\n{done.stderr}"
        return done.stdout


@pytest.fixture(scope="session")
def install() -> Iterator[Install]:
    from kubernetes import client, config

    context = os.environ.get("WEBORDINARY_E2E_CONTEXT")
    api = config.new_client_from_config(context=context)
    namespace = f"webordinary-e2e-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": namespace}})
    # The editors read the Anthropic key from this Secret (a dummy is enough to schedule them).
    core.create_namespaced_secret(namespace, {
        "metadata": {"name": "anthropic-api-key"}, "stringData": {"api-key": "e2e-dummy"}})
    values = os.environ.get("WEBORDINARY_E2E_VALUES", str(CHART / "ci" / "kind-values.yaml"))
    command = [
        "helm", "upgrade", "--install", RELEASE, str(CHART), "-n", namespace,
        *(["--kube-context", context] if context else []),
        "-f", values,
        # Hermes' SMTP listener trusts the pod itself, so a test can send mail from inside it.
        "--set-json", 'hermes.smtp.trustedNetworks=["127.0.0.0/8","10.0.0.0/8"]',
        "--wait", "--timeout", "5m",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=400, check=False)
    try:
        assert done.returncode == 0, f"helm install failed:\n{done.stdout}\n{done.stderr}"
        yield Install(namespace, RELEASE, api)
    finally:
        if os.environ.get("WEBORDINARY_E2E_KEEP") != "1":
            # Environments first, while the operator still runs their finalizers.
            custom = client.CustomObjectsApi(api)
            scope = ("webordinary.dev", "v1alpha1", namespace, "editenvironments")
            for item in custom.list_namespaced_custom_object(*scope)["items"]:
                custom.delete_namespaced_custom_object(*scope, item["metadata"]["name"])
            deadline = time.monotonic() + 120
            while custom.list_namespaced_custom_object(*scope)["items"]:
                if time.monotonic() > deadline:
                    for item in custom.list_namespaced_custom_object(*scope)["items"]:
                        custom.patch_namespaced_custom_object(*scope, item["metadata"]["name"], {
                            "metadata": {"annotations": {
                                "webordinary.dev/release-finalizer": "true"}}})
                    break
                time.sleep(2)
            subprocess.run(["helm", "uninstall", RELEASE, "-n", namespace, "--wait",
                            *(["--kube-context", context] if context else [])],
                           capture_output=True, timeout=300, check=False)
            core.delete_namespace(namespace)
