"""Where the emulator used to differ from a real API server, checked over real HTTP (and with
kubectl and kopf): empty optional fields of built-ins, date columns, includeObject, table
watches, an expiring watch history (410 Gone, and kopf re-listing after it), objects in a
missing namespace, `format: date-time`, the built-in table columns."""

from __future__ import annotations

import datetime
import json
import re
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import kopf
import pytest
import requests
from kopf.testing import KopfRunner

from tests.integration.devkit.conftest import FIXTURES
from tests.integration.devkit.test_kube_clients import KUBECTL, kubectl
from tests.plugins.kube import KubeHTTP
from tests.plugins.tcpproxy import TcpProxy
from webordinary.devkit.kubeapi import KubeAPI, start_kube_api

WIDGETS = "/apis/test.webordinary.dev/v1/namespaces/shop/widgets"
EES = "/apis/webordinary.dev/v1alpha1/namespaces/shop/editenvironments"
TABLE = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}


def ok(response: requests.Response, code: int = 201) -> dict[str, Any]:
    assert response.status_code == code, response.text
    body: dict[str, Any] = response.json()
    return body


def widget(name: str) -> dict[str, Any]:
    return {"apiVersion": "test.webordinary.dev/v1", "kind": "Widget",
            "metadata": {"name": name}, "spec": {"owner": "bob"}}


def environment(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "webordinary.dev/v1alpha1", "kind": "EditEnvironment",
            "metadata": {"name": name},
            "spec": {"clientId": "acme", "projectId": "site", "userId": name,
                     "repository": {"url": "https://example.com/r.git"}, **spec}}


def set_status(http: KubeHTTP, name: str, status: dict[str, Any]) -> None:
    ok(http.patch(f"{EES}/{name}/status", {"status": status}), 200)


# -- empty optional fields -----------------------------------------------------------------

def test_empty_optional_fields_of_builtins_are_dropped_like_the_real_encoding(
    http: KubeHTTP,
) -> None:
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "annotations": {}, "labels": {"app": "web"}},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
            "metadata": {"labels": {"app": "web"}, "annotations": {}},
            "spec": {"nodeSelector": {}, "tolerations": [], "containers": [{
                "name": "main", "image": "nginx:1.27", "args": [], "command": [],
                "env": [{"name": "EMPTY", "value": ""}, {"name": "SET", "value": "x"}],
                "workingDir": "", "resources": {},
            }]}}},
    }
    stored = ok(http.post("/apis/apps/v1/namespaces/shop/deployments", deployment))
    assert "annotations" not in stored["metadata"]
    pod = stored["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["env"] == [{"name": "EMPTY"}, {"name": "SET", "value": "x"}]
    for dropped in ("args", "command", "workingDir"):
        assert dropped not in container
    assert "nodeSelector" not in pod
    assert "tolerations" not in pod
    assert "annotations" not in stored["spec"]["template"]["metadata"]
    assert container["resources"] == {}, "structs are never omitted"
    # re-sending the empties is a no-op: same resourceVersion, no event
    again = ok(http.patch("/apis/apps/v1/namespaces/shop/deployments/web",
                          {"metadata": {"annotations": {}}, "spec": {"template": {"spec": {
                              "containers": [{"name": "main", "args": []}]}}}},
                          "strategic"), 200)
    assert again["metadata"]["resourceVersion"] == stored["metadata"]["resourceVersion"]

    policy = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
              "metadata": {"name": "deny"},
              "spec": {"podSelector": {}, "ingress": [], "egress": [{"ports": [{"port": 53}]}]}}
    stored = ok(http.post("/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies", policy))
    assert "ingress" not in stored["spec"]
    assert stored["spec"]["podSelector"] == {}
    assert stored["spec"]["policyTypes"] == ["Ingress", "Egress"]


def test_custom_resources_keep_their_empty_fields(http: KubeHTTP) -> None:
    stored = ok(http.post(EES, environment("keep", sessions=[], editor={"env": []})))
    assert stored["spec"]["sessions"] == []
    assert stored["spec"]["editor"]["env"] == []


# -- namespaces ----------------------------------------------------------------------------

def test_objects_in_a_missing_namespace_are_404(http: KubeHTTP) -> None:
    response = http.post("/api/v1/namespaces/nowhere/configmaps",
                         {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})
    assert response.status_code == 404, response.text
    body = response.json()
    assert body["reason"] == "NotFound"
    assert body["message"] == 'namespaces "nowhere" not found'
    assert body["details"] == {"name": "nowhere", "kind": "namespaces"}
    applied = http.patch("/api/v1/namespaces/nowhere/configmaps/c",
                         {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}},
                         "apply", fieldManager="test")
    assert applied.status_code == 404, applied.text
    assert http.get("/api/v1/namespaces/nowhere").status_code == 404
    ok(http.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                         "metadata": {"name": "nowhere"}}))
    ok(http.post("/api/v1/namespaces/nowhere/configmaps",
                 {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}))


# -- format: date-time ---------------------------------------------------------------------

@pytest.mark.parametrize("value", ["2026-11-28T19:00:00Z", "2026-11-28T19:00:00.123456Z",
                                   "2026-11-28T21:00:00+02:00", "2026-11-28T19:00:00.1-0130"])
def test_date_time_format_accepts_rfc3339(http: KubeHTTP, value: str) -> None:
    ok(http.post(EES, environment("when")))
    set_status(http, "when", {"lastActivity": value})
    assert http.get(f"{EES}/when").json()["status"]["lastActivity"] == value


@pytest.mark.parametrize("value", ["yesterday", "2026-13-01T00:00:00Z", "2026-11-28",
                                   "2026-11-28T25:00:00Z"])
def test_date_time_format_is_validated(http: KubeHTTP, value: str) -> None:
    ok(http.post(EES, environment("when")))
    response = http.patch(f"{EES}/when/status", {"status": {"lastActivity": value}})
    assert response.status_code == 422, response.text
    cause = response.json()["details"]["causes"][0]
    assert cause["field"] == "status.lastActivity"
    assert "must be of type date-time" in cause["message"]


# -- tables --------------------------------------------------------------------------------

def test_date_columns_take_fractions_and_offsets(http: KubeHTTP) -> None:
    now = datetime.datetime.now(datetime.UTC)
    for name, stamp in (("frac", now.isoformat()),
                        ("offset", (now - datetime.timedelta(minutes=5)).astimezone(
                            datetime.timezone(datetime.timedelta(hours=2))).isoformat())):
        ok(http.post(EES, environment(name)))
        set_status(http, name, {"lastActivity": stamp})
    table = ok(http.session.get(http.url + EES, headers=TABLE, timeout=10), 200)
    names = [c["name"] for c in table["columnDefinitions"]]
    column = names.index("Last Activity")
    cells = {row["cells"][0]: row["cells"][column] for row in table["rows"]}
    assert cells["frac"].endswith("s")
    assert int(cells["frac"][:-1]) < 60
    assert re.fullmatch(r"4m5\ds|5m|5m[12]?\ds", cells["offset"]), cells["offset"]


def test_include_object_chooses_what_rows_carry(http: KubeHTTP) -> None:
    ok(http.post(WIDGETS, widget("w1")))
    by_include = {}
    for include in ("None", "Metadata", "Object"):
        table = ok(http.session.get(http.url + WIDGETS, headers=TABLE, timeout=10,
                                    params={"includeObject": include}), 200)
        by_include[include] = table["rows"][0].get("object")
    assert by_include["None"] is None
    assert by_include["Metadata"]["kind"] == "PartialObjectMetadata"
    assert "spec" not in by_include["Metadata"]
    assert by_include["Object"]["kind"] == "Widget"
    assert by_include["Object"]["spec"]["owner"] == "bob"
    bad = http.session.get(http.url + WIDGETS, headers=TABLE, timeout=10,
                           params={"includeObject": "Everything"})
    assert bad.status_code == 400


def test_table_watch_sends_rows_with_headers_once(http: KubeHTTP) -> None:
    ok(http.post(WIDGETS, widget("w1")))
    ok(http.post(WIDGETS, widget("w2")))
    with http.session.get(http.url + WIDGETS, headers=TABLE, stream=True, timeout=15,
                          params={"watch": "true", "timeoutSeconds": "1"}) as response:

        events = [json.loads(line) for line in response.iter_lines() if line]
    assert [e["type"] for e in events] == ["ADDED", "ADDED"]
    first, second = events[0]["object"], events[1]["object"]
    assert first["kind"] == second["kind"] == "Table"
    assert [c["name"] for c in first["columnDefinitions"]] == ["Name", "Phase", "Age"]
    assert second["columnDefinitions"] is None
    assert [first["rows"][0]["cells"][0], second["rows"][0]["cells"][0]] == ["w1", "w2"]


def test_builtin_tables_have_the_usual_columns(http: KubeHTTP) -> None:
    ok(http.post("/api/v1/namespaces/shop/services", {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [
            {"name": "http", "port": 80}, {"name": "metrics", "port": 9090}]}}))
    ok(http.post("/api/v1/namespaces/shop/events", {
        "apiVersion": "v1", "kind": "Event", "metadata": {"name": "e1"},
        "involvedObject": {"kind": "Deployment", "name": "web", "namespace": "shop"},
        "type": "Warning", "reason": "Slow", "message": "took long",
        "lastTimestamp": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}))
    services = ok(http.session.get(http.url + "/api/v1/namespaces/shop/services",
                                   headers=TABLE, timeout=10), 200)
    names = [c["name"] for c in services["columnDefinitions"] if c["priority"] == 0]
    assert names == ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age"]
    cells = services["rows"][0]["cells"]
    assert cells[1] == "ClusterIP"
    assert cells[3] == "<none>"
    assert cells[4] == "80/TCP,9090/TCP"
    events = ok(http.session.get(http.url + "/api/v1/namespaces/shop/events",
                                 headers=TABLE, timeout=10), 200)
    names = [c["name"] for c in events["columnDefinitions"] if c["priority"] == 0]
    assert names == ["Last Seen", "Type", "Reason", "Object", "Message"]
    assert events["rows"][0]["cells"][1:4] == ["Warning", "Slow", "deployment/web"]
    assert "took long" in events["rows"][0]["cells"]


@pytest.mark.skipif(not Path(KUBECTL).exists(), reason="kubectl is not installed")
def test_kubectl_sort_by_and_watch(api: KubeAPI, http: KubeHTTP) -> None:
    for name, size in (("big", 9), ("small", 1)):
        ok(http.post(WIDGETS, {**widget(name), "spec": {"owner": "bob", "size": size}}))
    out = kubectl(api, "get", "widgets", "-n", "shop", "--sort-by=.spec.size").stdout
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["small", "big"]
    ok(http.post(EES, environment("listed")))
    set_status(http, "listed", {"lastActivity": "2026-01-01T00:00:00.5+01:00"})
    listed = kubectl(api, "get", "ee", "-n", "shop").stdout
    assert "listed" in listed
    watcher = subprocess.Popen([KUBECTL, f"--server={api.url}", "--kubeconfig=/dev/null",
                                "get", "widgets", "-n", "shop", "-w"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    stdout = watcher.stdout
    assert stdout is not None

    def read() -> None:
        for line in stdout:
            lines.append(line)

    threading.Thread(target=read, daemon=True).start()
    try:
        _wait(lambda: len(lines) >= 3, timeout=30)  # the header and the two widgets
        ok(http.post(WIDGETS, widget("later")))
        _wait(lambda: any(line.startswith("later") for line in lines), timeout=30)
    finally:
        watcher.terminate()
        watcher.wait(timeout=10)
    assert lines[0].split() == ["NAME", "PHASE", "AGE"], lines
    assert {line.split()[0] for line in lines[1:]} >= {"big", "small", "later"}


# -- watch history window ------------------------------------------------------------------

def test_watch_history_expires_with_410_gone() -> None:
    api = start_kube_api([FIXTURES], watch_history_seconds=0.5)
    try:
        api.create_namespaces("shop")
        http = KubeHTTP(api.url)
        first = ok(http.post(WIDGETS, widget("w1")))
        since = first["metadata"]["resourceVersion"]
        ok(http.post(WIDGETS, widget("w2")))
        resumed = http.watch(WIDGETS, timeout=1, resourceVersion=since)
        assert [e["object"]["metadata"]["name"] for e in resumed] == ["w2"]
        time.sleep(0.7)
        expired = http.watch(WIDGETS, timeout=1, resourceVersion=since)
        assert expired[0]["type"] == "ERROR"
        assert expired[0]["object"]["code"] == 410
        assert expired[0]["object"]["reason"] == "Expired"
        assert api.gone_count() == 1
        # nothing was missed after the newest event: that watch still resumes
        latest = http.get(WIDGETS).json()["metadata"]["resourceVersion"]
        assert http.watch(WIDGETS, timeout=1, resourceVersion=latest) == []
    finally:
        api.stop()


def test_kopf_relists_after_410_gone() -> None:
    """Cut kopf off (a partition) long enough for its resourceVersion to expire: its next watch
    gets 410 Gone, it re-lists, and handles what it missed."""
    api = start_kube_api([FIXTURES], watch_history_seconds=1.0)
    proxy = TcpProxy(api.url).start()
    seen: list[str] = []
    lock = threading.Lock()
    registry = kopf.OperatorRegistry()

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
            prefix="test.webordinary.dev")
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix="test.webordinary.dev", key="last-handled-configuration")
        settings.persistence.finalizer = "test.webordinary.dev/finalizer"
        settings.networking.error_backoffs = [0.2, 0.5, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0]

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=proxy.url, insecure=True, scheme="Bearer",
                                   token="dummy")

    @kopf.on.event("test.webordinary.dev", "v1", "widgets", registry=registry)
    def event(name: str, **_: Any) -> None:
        with lock:
            if name not in seen:
                seen.append(name)

    try:
        api.create_namespaces("shop")
        http = KubeHTTP(api.url)
        with KopfRunner(["run", "--standalone", "-A"], registry=registry, timeout=60) as runner:
            ok(http.post(WIDGETS, widget("before")))
            _wait(lambda: "before" in seen)
            lists_before = api.request_counts()["LIST"]
            proxy.pause()
            ok(http.post(WIDGETS, widget("missed")))
            time.sleep(1.5)  # the history window passes while kopf is cut off
            proxy.resume()
            _wait(lambda: "missed" in seen, timeout=20)
            assert api.gone_count() >= 1
            assert api.request_counts()["LIST"] > lists_before, "kopf re-listed"
        assert runner.exception is None, runner.output
    finally:
        proxy.stop()
        api.stop()


def _wait(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {check}")


# -- authentication ------------------------------------------------------------------------

def test_static_bearer_tokens_when_asked(api: KubeAPI, http: KubeHTTP) -> None:
    assert http.get(WIDGETS).status_code == 200  # by default any caller passes
    api.accept_tokens({"good"})
    refused = http.get(WIDGETS)
    assert refused.status_code == 401
    assert refused.json()["reason"] == "Unauthorized"
    bad = http.session.get(http.url + WIDGETS, headers={"Authorization": "Bearer bad"},
                           timeout=10)
    assert bad.status_code == 401
    good = http.session.get(http.url + WIDGETS, headers={"Authorization": "Bearer good"},
                            timeout=10)
    assert good.status_code == 200
    assert http.get("/healthz").status_code == 200
    api.accept_tokens(None)
    assert http.get(WIDGETS).status_code == 200
