"""On a real cluster: the chart installs, an EditEnvironment becomes Ready with all its children,
Hermes turns an SMTP mail into an environment, and deletion keeps the workspace."""

from __future__ import annotations

import json
import os
import textwrap
from typing import Any

import pytest

from tests.e2e.conftest import ENVIRONMENTS, Install, wait_for
from webordinary.contracts import environment as env
from webordinary.contracts import naming

pytestmark = pytest.mark.cluster


def get_environment(install: Install, name: str) -> dict[str, Any] | None:
    return install.get(ENVIRONMENTS, name)


def condition(obj: dict[str, Any] | None, kind: str) -> dict[str, Any] | None:
    for cond in ((obj or {}).get("status") or {}).get("conditions", []):
        if cond["type"] == kind:
            return dict(cond)
    return None


def create_environment(install: Install, client_id: str, thread: str, *,
                       suspend: bool) -> str:
    name = naming.environment_name(client_id, "website", "john")
    storage = {"deletionPolicy": "Retain",
               "storageClassName": os.environ.get("WEBORDINARY_E2E_STORAGE_CLASS", "standard")}
    install.create({
        "apiVersion": env.API_VERSION,
        "kind": env.KIND,
        "metadata": {"name": name},
        "spec": {
            "clientId": client_id, "projectId": "website", "userId": "john",
            "repository": {"url": "https://github.com/webordinary/example-site.git"},
            "sessions": [thread],
            "suspend": suspend,
            "storage": storage,
        },
    })
    return name


def test_operator_and_hermes_are_available(install: Install) -> None:
    for component in ("operator", "hermes"):
        deployment = install.get("deployment", f"{install.release}-{component}") or {}
        assert deployment["status"].get("availableReplicas") == 1, component
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
    crd = install.get("customresourcedefinition", ENVIRONMENTS) or {}
    assert any(c["type"] == "Established" and c["status"] == "True"
               for c in crd["status"]["conditions"])


def test_metrics_are_served(install: Install) -> None:
    fetch = ("import urllib.request as u; "
             "print(u.urlopen('http://127.0.0.1:9090/metrics', timeout=5).read().decode())")
    operator = install.kubectl("exec", f"deploy/{install.release}-operator", "--",
                               "python", "-c", fetch)
    assert "webordinary_operator_environments" in operator
    hermes = install.kubectl("exec", f"deploy/{install.release}-hermes", "--",
                             "python", "-c", fetch)
    assert "# TYPE" in hermes


def test_environment_reconciles_to_ready_with_every_child(install: Install) -> None:
    name = create_environment(install, "e2eready", "t1", suspend=True)
    ready = wait_for(f"{name} Ready", lambda: (
        (c := condition(get_environment(install, name), "Ready")) and c["status"] == "True"
        and get_environment(install, name)))
    status = ready["status"]
    assert status["phase"] == "Sleeping", "suspended: everything in place, editor at 0"
    assert all(status["queues"].get(role) for role in ("input", "output", "dlq"))
    for kind in ("QueuesReady", "StorageReady", "WorkloadReady", "RoutingReady"):
        assert (condition(ready, kind) or {}).get("status") == "True", kind
    children = json.loads(install.kubectl(
        "get", "deploy,svc,ing,netpol,sa,pvc", "-l", f"{env.LABEL_ENVIRONMENT}={name}",
        "-o", "json"))["items"]
    kinds = {(c["kind"], c["metadata"]["name"]) for c in children}
    assert kinds >= {
        ("Deployment", naming.child_name(name, "editor")),
        ("Service", naming.child_name(name, "editor")),
        ("NetworkPolicy", naming.child_name(name, "editor")),
        ("ServiceAccount", naming.child_name(name, "editor")),
        ("PersistentVolumeClaim", naming.child_name(name, "workspace")),
    }
    assert not [c for c in children if c["kind"] == "Ingress"], "previews go via the gateway"
    deployment = next(c for c in children if c["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 0
    uid = ready["metadata"]["uid"]
    for child in children:
        if child["kind"] != "PersistentVolumeClaim":
            assert [o["uid"] for o in child["metadata"]["ownerReferences"]] == [uid]


def test_deleted_child_comes_back(install: Install) -> None:
    name = create_environment(install, "e2edrift", "t2", suspend=True)
    wait_for(f"{name} Ready", lambda: (condition(get_environment(install, name), "Ready")
                                       or {}).get("status") == "True")
    service = naming.child_name(name, "editor")
    install.kubectl("delete", "service", service, "--wait=true")
    wait_for(f"service {service} re-created", lambda: service in install.kubectl(
        "get", "svc", "-o", "name"), timeout=120)


def test_deletion_runs_the_finalizer_and_keeps_the_workspace(install: Install) -> None:
    name = create_environment(install, "e2edelete", "t3", suspend=True)
    wait_for(f"{name} Ready", lambda: (condition(get_environment(install, name), "Ready")
                                       or {}).get("status") == "True")
    live = get_environment(install, name) or {}
    assert env.FINALIZER in live["metadata"]["finalizers"]
    install.kubectl("delete", ENVIRONMENTS, name, "--wait=false")
    wait_for(f"{name} gone", lambda: get_environment(install, name) is None, timeout=180)
    pvcs = install.kubectl("get", "pvc", "-o", "name")
    assert naming.child_name(name, "workspace") in pvcs, "storage.deletionPolicy Retain"
    wait_for("editor Deployment garbage-collected", lambda: naming.child_name(
        name, "editor") not in install.kubectl("get", "deploy", "-o", "name"), timeout=120)


def test_mail_to_hermes_creates_an_environment(install: Install) -> None:
    """The kind values route john@ameliastamps.test -> ameliastamps/website (user john)."""
    send = textwrap.dedent("""
        import smtplib
        from email.message import EmailMessage
        m = EmailMessage()
        m["From"] = "john@ameliastamps.test"
        m["To"] = "website@edit.webordinary.test"
        m["Subject"] = "Make the title blue"
        m["Message-ID"] = "<e2e-1@ameliastamps.test>"
        m.set_content("Please make the homepage title blue.")
        with smtplib.SMTP("127.0.0.1", 2525, timeout=30) as s:
            s.send_message(m)
    """)
    install.kubectl("exec", f"deploy/{install.release}-hermes", "--", "python", "-c", send)
    name = naming.environment_name("ameliastamps", "website", "john")
    created = wait_for(f"{name} created by Hermes", lambda: get_environment(install, name))
    assert created["spec"]["clientId"] == "ameliastamps"
    assert len(created["spec"]["sessions"]) == 1
    wait_for(f"{name} has its input queue", lambda: ((get_environment(install, name) or {})
                                                     .get("status") or {}).get("queues", {})
             .get("input"))
