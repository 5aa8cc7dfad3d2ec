"""Real-cluster fixtures (kind or EKS): install the chart once per session, clean up after.

Runs only with WEBORDINARY_E2E=1, a reachable kubeconfig context and `helm` and `kubectl` on
PATH; everything else is skipped with the reason. The tests talk to the cluster with kubectl (it
speaks every kubeconfig, including EKS's exec plugin). Knobs (environment variables):

- WEBORDINARY_E2E_VALUES: values file (default: helm/webordinary/ci/kind-values.yaml, which needs
  the images built and loaded: `kind load docker-image webordinary/{operator,hermes,editor}:dev`)
- WEBORDINARY_E2E_CONTEXT: kubeconfig context (default: the current one)
- WEBORDINARY_E2E_STORAGE_CLASS: StorageClass of the workspaces (default: kind's `standard`; its
  local-path provisioner cannot bind ReadWriteMany, which Ready does not wait for; EKS: efs-sc)
- WEBORDINARY_E2E_KEEP=1: keep the namespace and release for debugging
"""

from __future__ import annotations

import json
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

from webordinary.contracts import environment as env

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "webordinary"
RELEASE = "webordinary"


def _why_not() -> str | None:
    """None when a real cluster is available, else why the suite is skipped."""
    if os.environ.get("WEBORDINARY_E2E") != "1":
        return "real-cluster suite: set WEBORDINARY_E2E=1 with a kind/EKS kubeconfig to run it"
    for tool in ("helm", "kubectl"):
        if shutil.which(tool) is None:
            return f"real-cluster suite: the {tool} binary is not on PATH"
    reached = kubectl("version", "-o", "json", "--request-timeout=5s", check=False)
    if reached.returncode != 0 or "serverVersion" not in json.loads(reached.stdout or "{}"):
        return f"real-cluster suite: no reachable Kubernetes cluster ({reached.stderr.strip()})"
    return None


def kubectl(*args: str, stdin: str | None = None, timeout: float = 60, check: bool = True
            ) -> subprocess.CompletedProcess[str]:
    """kubectl in WEBORDINARY_E2E_CONTEXT (default: the current context)."""
    context = os.environ.get("WEBORDINARY_E2E_CONTEXT")
    command = ["kubectl", *(["--context", context] if context else []), *args]
    done = subprocess.run(command, capture_output=True, text=True, input=stdin,
                          timeout=timeout, check=False)
    if check:
        assert done.returncode == 0, f"{' '.join(command)}\n{done.stderr}"
    return done


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

    def kubectl(self, *args: str, stdin: str | None = None, timeout: float = 60) -> str:
        """kubectl in the install's namespace; fails the test when it fails."""
        return kubectl("-n", self.namespace, *args, stdin=stdin, timeout=timeout).stdout

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        found = self.kubectl("get", kind, name, "--ignore-not-found", "-o", "json")
        return json.loads(found) if found.strip() else None

    def create(self, obj: dict[str, Any]) -> None:
        self.kubectl("create", "-f", "-", stdin=json.dumps(obj))


ENVIRONMENTS = f"{env.PLURAL}.{env.GROUP}"


@pytest.fixture(scope="session")
def install() -> Iterator[Install]:
    context = os.environ.get("WEBORDINARY_E2E_CONTEXT")
    namespace = f"webordinary-e2e-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", namespace)
    # The editors read the Anthropic key from this Secret (a dummy is enough to schedule them).
    kubectl("-n", namespace, "create", "secret", "generic", "anthropic-api-key",
            "--from-literal=api-key=e2e-dummy")
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
    install = Install(namespace, RELEASE)
    try:
        assert done.returncode == 0, f"helm install failed:\n{done.stdout}\n{done.stderr}"
        yield install
    finally:
        if os.environ.get("WEBORDINARY_E2E_KEEP") != "1":
            # Environments first, while the operator still runs their finalizers (best effort:
            # after a failed install there may be no CRD to list).
            kubectl("-n", namespace, "delete", ENVIRONMENTS, "--all", "--wait=false",
                    check=False)
            deadline = time.monotonic() + 120
            while names := kubectl("-n", namespace, "get", ENVIRONMENTS, "-o", "name",
                                   check=False).stdout.split():
                if time.monotonic() > deadline:
                    for name in names:
                        kubectl("-n", namespace, "annotate", "--overwrite", name,
                                "webordinary.dev/release-finalizer=true", check=False)
                    break
                time.sleep(2)
            subprocess.run(["helm", "uninstall", RELEASE, "-n", namespace, "--wait",
                            *(["--kube-context", context] if context else [])],
                           capture_output=True, timeout=300, check=False)
            kubectl("delete", "namespace", namespace, "--wait=false")
