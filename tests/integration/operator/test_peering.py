"""Operator high availability: two `python -m webordinary.operator` processes with kopf peering
(the chart's peering CRD and record), one active and one paused; SIGKILL the active one and the
standby takes over within the peering lifetime."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.integration.operator.conftest import NAMESPACE, Harness, spec_for, wait_for
from tests.unit.helm.chart_render import render
from webordinary.operator.settings import OperatorSettings

LIFETIME = 5  # the chart's default is 30: the failover bound scales with it


def operator_env(settings: OperatorSettings) -> dict[str, str]:
    env = dict(os.environ)
    for key, value in settings.model_dump().items():
        if value == [] or value == {}:
            continue
        if value is None:
            text = "null"  # env_parse_none_str
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            text = ",".join(value)
        elif isinstance(value, list | dict):
            text = json.dumps(value)
        else:
            text = str(value)
        env[f"WEBORDINARY_OPERATOR_{key.upper()}"] = text
    return env


def _reconciled(harness: Harness, name: str) -> bool:
    ee = harness.api.ee(name) or {}
    return bool(ee.get("status", {}).get("observedGeneration"))


def test_a_standby_operator_takes_over_within_the_peering_lifetime(
    harness: Harness, tmp_path: Path
) -> None:
    api = harness.api
    chart = render({"operator": {"replicas": 2}}, namespace=NAMESPACE)
    (crd,) = chart.all("CustomResourceDefinition")
    api.call("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    (peering,) = chart.all("KopfPeering")
    peering["metadata"]["namespace"] = NAMESPACE
    wait_for(lambda: api.get("/apis/kopf.dev/v1") is not None, what="peering CRD served")
    api.call("POST", f"/apis/kopf.dev/v1/namespaces/{NAMESPACE}/kopfpeerings", peering)
    settings = harness.settings.model_copy(update={
        "namespaces": [NAMESPACE], "peering_name": peering["metadata"]["name"],
        "peering_lifetime_seconds": LIFETIME, "liveness_port": 0, "log_format": "json"})
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    processes: list[subprocess.Popen[bytes]] = []
    for log in logs:
        with log.open("ab") as out:
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "webordinary.operator"], env=operator_env(settings),
                stdout=out, stderr=subprocess.STDOUT))
    try:
        record = f"/apis/kopf.dev/v1/namespaces/{NAMESPACE}/kopfpeerings/webordinary"
        # Start-up is not what this test measures: two interpreters importing kopf on a busy
        # machine can take a while, so the start-up waits are generous; failover is asserted.
        wait_for(lambda: len((api.get(record) or {}).get("status") or {}) == 2, timeout=120,
                 what="both operators in the peering record")
        wait_for(lambda: any("Resuming operations" in log.read_text() for log in logs),
                 timeout=60, what="an operator active")
        time.sleep(2.0)  # both have seen each other's record: the lower priority pauses
        api.create_ee("ameliastamps-website-first", spec_for("first"))
        wait_for(lambda: _reconciled(harness, "ameliastamps-website-first"), timeout=30,
                 what="the active operator reconciles")
        time.sleep(1.0)  # the handling is logged
        handled = [i for i, log in enumerate(logs)
                   if "ameliastamps-website-first" in log.read_text()]
        assert len(handled) == 1, "exactly one operator handles an environment"
        (active,) = handled
        standby = 1 - active
        processes[active].send_signal(signal.SIGKILL)
        killed = time.monotonic()
        api.create_ee("ameliastamps-website-second", spec_for("second"))
        wait_for(lambda: _reconciled(harness, "ameliastamps-website-second"),
                 timeout=LIFETIME + 30, what="the standby takes over")
        failover = time.monotonic() - killed
        print(f"failover after SIGKILL of the active operator: {failover:.1f} s "
              f"(peering lifetime {LIFETIME} s)")
        assert failover < LIFETIME + 10
        for line in logs[standby].read_text().splitlines():
            if line.startswith("{"):
                json.loads(line)  # JSON logs (operator.logFormat: json)
        assert "ameliastamps-website-second" in logs[standby].read_text()
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
        print(*(log.read_text()[-3000:] for log in logs), sep="\n----\n")
