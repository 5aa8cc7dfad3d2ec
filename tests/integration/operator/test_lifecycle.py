"""Sleep and wake with the production drift interval (300 s): nothing here may wait for a tick.

One operator run drives several environments at once (the message wake needs up to one
wake-poll interval, 60 s, so the other cases share that time).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from datetime import UTC, datetime
from typing import Any

from tests.integration.operator.conftest import (
    NAMESPACE,
    Harness,
    condition,
    is_ready,
    spec_for,
    wait_for,
)
from webordinary.contracts.activity import activity_patch, wake_patch
from webordinary.devkit.kubelet import LocalKubelet
from webordinary.hermes import environments as hermes_envs

PRODUCTION = {"drift_interval_seconds": 300.0, "drift_initial_delay_seconds": None}
KUBECTL = shutil.which("kubectl")


def kubectl_wait(harness: Harness, name: str, timeout: str) -> subprocess.CompletedProcess[str]:
    """The real kubectl, as an SRE or a deploy script waits for an environment."""
    return subprocess.run(
        [KUBECTL or "kubectl", f"--server={harness.kube_api.url}", "--kubeconfig=/dev/null",
         "wait", "--for=condition=Ready", f"ee/{name}", "-n", NAMESPACE,
         f"--timeout={timeout}"],
        capture_output=True, text=True, timeout=60, check=False)


def replicas(harness: Harness, name: str) -> int | None:
    found = harness.api.child("/apis/apps/v1", "deployments", f"{name}-editor")
    return None if found is None else int(found["spec"]["replicas"])


def phase(harness: Harness, name: str) -> str | None:
    return ((harness.api.ee(name) or {}).get("status") or {}).get("phase")


def asleep_at(harness: Harness, name: str, timeout: float) -> float:
    wait_for(lambda: replicas(harness, name) == 0, timeout=timeout, what=f"{name} asleep")
    return time.time()


def test_sleep_and_wake_keep_their_promise(harness: Harness, kubelet: LocalKubelet) -> None:
    api, sqs = harness.api, harness.sqs
    names = {case: f"ameliastamps-website-{case}" for case in
             ("annot", "thread", "queued", "job", "msg")}
    with harness.run_operator(**PRODUCTION) as runner:
        created = time.time()
        for case, name in names.items():
            api.create_ee(name, spec_for(case, idleTimeout="12s", sessions=["aaaa1111"]))
        # Ready means serving: only once the kubelet reports the pod available and PVC bound.
        ee = wait_for(lambda: (e := api.ee(names["annot"])) and is_ready(e) and e, timeout=20,
                      what="Ready")
        assert condition(ee, "StorageReady")["reason"] == "Bound"  # type: ignore[index]
        inputs = {case: (api.ee(n) or {})["status"]["queues"]["input"]
                  for case, n in names.items()}
        # A queued message and a job in flight (the editor holds its message) keep it awake.
        sqs.send_message(QueueUrl=inputs["queued"], MessageBody="{}")
        sqs.send_message(QueueUrl=inputs["job"], MessageBody="{}")
        held = sqs.receive_message(QueueUrl=inputs["job"], VisibilityTimeout=600)["Messages"]
        # Activity stamped after creation moves the deadline to stamp + 12 s.
        stamped = datetime.now(UTC)
        api.patch_ee(names["annot"], activity_patch(stamped))
        assert stamped.timestamp() - created < 10, "the kubelet was too slow for this test"
        slept = asleep_at(harness, names["annot"], timeout=25)
        error = slept - (stamped.timestamp() + 12)
        assert -0.5 <= error <= 5.0, f"slept {error:+.2f}s from its deadline"
        assert phase(harness, names["annot"]) == "Sleeping"
        assert not is_ready(api.ee(names["annot"])), "asleep is not Ready (not serving)"
        wait_for(lambda: replicas(harness, names["msg"]) == 0, timeout=15, what="msg asleep")
        sqs.send_message(QueueUrl=inputs["msg"], MessageBody="{}")
        message_sent = time.time()

        # A wake annotation (kubectl, the gateway, Hermes) wakes at once, not at a tick.
        asleep_at(harness, names["annot"], timeout=1)
        if KUBECTL:  # `kubectl wait --for=condition=Ready` does not pass a sleeping editor
            slept_wait = kubectl_wait(harness, names["annot"], "1s")
            assert slept_wait.returncode != 0, slept_wait.stdout
            assert "timed out" in slept_wait.stderr
        requested = time.time()
        api.patch_ee(names["annot"], wake_patch(datetime.now(UTC)))
        wait_for(lambda: replicas(harness, names["annot"]) == 1, timeout=2, what="woken")
        assert time.time() - requested < 2.0
        assert not is_ready(api.ee(names["annot"])), "Starting is not Ready"
        if KUBECTL:  # ... and returns once the editor serves, not while it starts
            waited = kubectl_wait(harness, names["annot"], "30s")
            assert waited.returncode == 0, waited.stderr
            assert is_ready(api.ee(names["annot"]))
            assert (harness.api.child("/apis/apps/v1", "deployments", f"{names['annot']}-editor")
                    or {}).get("status", {}).get("availableReplicas") == 1
        wait_for(lambda: is_ready(api.ee(names["annot"])), timeout=20, what="Ready after wake")

        # Hermes' new thread (sessions patch + wake annotation) wakes at once too.
        asleep_at(harness, names["thread"], timeout=20)
        obj = api.ee(names["thread"]) or {}
        ops = hermes_envs.session_patch(obj, "bbbb2222")
        api.call("PATCH", f"/apis/webordinary.dev/v1alpha1/namespaces/tenants/editenvironments/"
                 f"{names['thread']}", ops, "application/json-patch+json")
        assert hermes_envs.needs_wake(obj)
        api.patch_ee(names["thread"], hermes_envs.wake_patch(datetime.now(UTC)))
        wait_for(lambda: replicas(harness, names["thread"]) == 1, timeout=2, what="new thread")

        # Never asleep while a message waits or a job runs, long past the idle timeout.
        assert time.time() - created > 15  # idleTimeout 12 s
        assert replicas(harness, names["queued"]) == 1
        assert replicas(harness, names["job"]) == 1
        sqs.delete_message(QueueUrl=inputs["job"], ReceiptHandle=held[0]["ReceiptHandle"])

        # A message from anyone on a sleeping environment's queue wakes it within 60 s.
        wait_for(lambda: replicas(harness, names["msg"]) == 1, timeout=65,
                 what="woken by a queued message")
        assert time.time() - message_sent <= 61.0
        asleep_at(harness, names["job"], timeout=20)  # the job done: it sleeps after idle
    assert runner.exception is None, runner.stdout


def test_wake_after_operator_restart_and_old_bookkeeping(harness: Harness) -> None:
    api = harness.api
    name = "ameliastamps-website-restart"
    with harness.run_operator(**PRODUCTION) as runner:
        api.create_ee(name, spec_for("restart", idleTimeout="2s"))
        wait_for(lambda: replicas(harness, name) == 0, timeout=15, what="asleep")
    assert runner.exception is None, runner.stdout
    # An operator of the previous release kept kopf's bookkeeping under webordinary.dev/, whose
    # marker hid every webordinary.dev/ annotation from kopf: a wake must still work.
    obj = api.ee(name) or {}
    legacy: dict[str, Any] = {
        "webordinary.dev/kopf-managed": "yes",
        "webordinary.dev/last-handled-configuration": obj["metadata"]["annotations"][
            "kopf.webordinary.dev/last-handled-configuration"],
        "kopf.webordinary.dev/last-handled-configuration": None,
        "kopf.webordinary.dev/kopf-managed": None,
    }
    api.patch_ee(name, {"metadata": {"annotations": legacy}})
    api.patch_ee(name, wake_patch(datetime.now(UTC)))  # while no operator runs
    with harness.run_operator(**PRODUCTION) as runner:
        wait_for(lambda: replicas(harness, name) == 1, timeout=5, what="woken on resume")
        wait_for(lambda: replicas(harness, name) == 0, timeout=10, what="asleep again")
        api.patch_ee(name, wake_patch(datetime.now(UTC)))
        wait_for(lambda: replicas(harness, name) == 1, timeout=2, what="woken by annotation")
        annotations = (api.ee(name) or {})["metadata"]["annotations"]
        assert "webordinary.dev/kopf-managed" not in annotations
        assert "webordinary.dev/last-handled-configuration" not in annotations
    assert runner.exception is None, runner.stdout


def test_crash_looping_editor_is_not_ready(harness: Harness, kubelet: LocalKubelet) -> None:
    api = harness.api
    name = "ameliastamps-website-crash"
    with harness.run_operator(**PRODUCTION) as runner:
        api.create_ee(name, spec_for("crash", editor={"env": [{"name": "PAUSE_EXIT",
                                                                "value": "3"}]}))

        def crash_loop() -> dict[str, Any] | None:
            cond = condition(api.ee(name), "WorkloadReady")
            return cond if cond and cond["reason"] == "CrashLoopBackOff" else None

        cond = wait_for(crash_loop, timeout=30, what="CrashLoopBackOff")
        assert "exit code 3" in cond["message"]
        ee = api.ee(name) or {}
        assert not is_ready(ee)
        assert condition(ee, "Ready")["reason"] == "CrashLoopBackOff"  # type: ignore[index]
        assert ee["status"]["phase"] == "Failed"
    assert runner.exception is None, runner.stdout
