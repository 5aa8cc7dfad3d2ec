"""Crashes, AWS trouble and stuck deletions: the operator recovers or says clearly why not."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.integration.operator.conftest import (
    Harness,
    condition,
    is_reconciled,
    spec_for,
    wait_for,
)
from tests.integration.operator.sqsproxy import SqsProxy
from webordinary.contracts.environment import ANNOTATION_RELEASE_FINALIZER
from webordinary.operator.adapters.sqs import TAG_NAME, TAG_UID
from webordinary.operator.settings import OperatorSettings


def start_operator(settings: OperatorSettings, log: Path) -> subprocess.Popen[bytes]:
    """`python -m webordinary.operator` as its own process (so it can be SIGKILLed)."""
    env = dict(os.environ)
    for key, value in settings.model_dump().items():
        if value is None or value == []:
            if value is None and key.endswith("_port"):  # off, not a fixed default port
                env[f"WEBORDINARY_OPERATOR_{key.upper()}"] = "null"
            continue
        plain = isinstance(value, list) and all(isinstance(v, str) for v in value)
        text = ",".join(value) if plain else (
            __import__("json").dumps(value) if isinstance(value, dict | list) else str(value))
        env[f"WEBORDINARY_OPERATOR_{key.upper()}"] = text
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "webordinary.operator"], env=env,
                                stdout=out, stderr=subprocess.STDOUT)


def test_killed_mid_creation_and_restarted(
    proxied: tuple[Harness, SqsProxy], tmp_path: Path
) -> None:
    harness, proxy = proxied
    api = harness.api
    settings = harness.settings.model_copy(update={
        "drift_interval_seconds": 30.0, "drift_initial_delay_seconds": 30.0})
    names = [f"ameliastamps-website-u{i:02d}" for i in range(50)]
    log = tmp_path / "operator.log"
    operator = start_operator(settings, log)
    try:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda n: api.create_ee(n, spec_for(n.rsplit("-", 1)[-1])), names))
        wait_for(lambda: proxy.counts["CreateQueue"] >= 40, timeout=60,
                 what="the operator to be busy creating queues")
        operator.send_signal(signal.SIGKILL)
        operator.wait(timeout=10)
        ready_at_kill = sum(is_reconciled(api.ee(n)) for n in names)
        assert ready_at_kill < len(names), "the kill came too late to test anything"
        operator = start_operator(settings, log)
        wait_for(lambda: all(is_reconciled(api.ee(n)) for n in names), timeout=120,
                 what=f"all 50 Ready after the restart (operator log: {log})")
    finally:
        operator.send_signal(signal.SIGTERM)
        try:
            operator.wait(timeout=15)
        except subprocess.TimeoutExpired:
            operator.kill()
    expected = sorted(f"webordinary-{role}-{n}" for n in names
                      for role in ("input", "output", "dlq"))
    assert harness.queue_names() == expected, "duplicate or orphaned queues"
    # Only calls in flight at the kill may be repeated after the restart (never a duplicate).
    assert proxy.counts["ListQueues"] >= 1, "a burst of 50 uses the shared listing"
    created = proxy.counts["CreateQueue"]
    assert len(expected) <= created <= len(expected) + settings.aws_concurrency, dict(proxy.counts)
    for name in names:
        ee: dict[str, Any] = api.ee(name) or {}
        uid = ee["metadata"]["uid"]
        for role in ("input", "output", "dlq"):
            url = ee["status"]["queues"][role]
            tags = harness.sqs.list_queue_tags(QueueUrl=url)["Tags"]
            assert (tags[TAG_NAME], tags[TAG_UID]) == (name, uid)
        redrive = harness.sqs.get_queue_attributes(
            QueueUrl=ee["status"]["queues"]["input"], AttributeNames=["RedrivePolicy"])
        assert json.loads(redrive["Attributes"]["RedrivePolicy"])["deadLetterTargetArn"].endswith(
            f":webordinary-dlq-{name}")


def test_throttling_and_5xx_are_retried(proxied: tuple[Harness, SqsProxy]) -> None:
    harness, proxy = proxied
    api = harness.api
    proxy.fail("CreateQueue", status=400, code="RequestThrottled", times=2)
    proxy.fail("GetQueueUrl", status=503, code="ServiceUnavailable", times=1)
    with harness.run_operator(aws_max_attempts=1) as runner:
        api.create_ee("ameliastamps-website-x", spec_for("x"))
        wait_for(lambda: is_reconciled(api.ee("ameliastamps-website-x")), timeout=30, what="Ready")
    assert runner.exception is None
    assert proxy.counts["CreateQueue"] == 3 + 2
    assert len(harness.queue_names()) == 3


def test_stuck_cleanup_degrades_and_release_annotation_lets_go(
    proxied: tuple[Harness, SqsProxy]
) -> None:
    harness, proxy = proxied
    api = harness.api
    name = "ameliastamps-website-y"
    # The fast retries before Degraded are under test: two of them, 0.5-2 s apart (production:
    # five, 2-60 s apart).
    with harness.run_operator(aws_max_attempts=1, cleanup_slow_retry_seconds=600.0,
                              cleanup_max_retries=2, retry_base_delay_seconds=0.5,
                              retry_max_delay_seconds=2.0) as runner:
        api.create_ee(name, spec_for("y"))
        wait_for(lambda: is_reconciled(api.ee(name)), what="Ready")
        proxy.fail("DeleteQueue", status=500, code="InternalFailure")
        api.delete_ee(name)

        def degraded() -> dict[str, Any] | None:
            cond = condition(api.ee(name), "Degraded")
            return cond if cond and cond["status"] == "True" else None

        cond = wait_for(degraded, timeout=30, what="Degraded")
        assert ANNOTATION_RELEASE_FINALIZER in cond["message"]
        ee: dict[str, Any] = api.ee(name) or {}
        assert ee["status"]["phase"] == "Terminating"
        assert ee["metadata"]["deletionTimestamp"]
        time.sleep(1)
        assert api.ee(name) is not None, "the finalizer holds while cleanup fails"
        api.patch_ee(name, {"metadata": {"annotations": {ANNOTATION_RELEASE_FINALIZER: "true"}}})
        wait_for(lambda: api.ee(name) is None, timeout=10, what="released and gone")
        events = api.get("/api/v1/namespaces/tenants/events")["items"]
        reasons = {e["reason"] for e in events if e["involvedObject"]["name"] == name}
        assert "CleanupFailed" in reasons
    assert runner.exception is None
    assert len(harness.queue_names()) == 3, "queues stay when cleanup could not run"
