"""Operator settings come from WEBORDINARY_OPERATOR_* variables."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from webordinary.operator.settings import OperatorSettings


def test_defaults_need_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = OperatorSettings()
    assert settings.kube_api_url is None
    assert settings.watch_namespaces() == []
    assert settings.drift_interval_seconds > 0
    assert settings.drift_initial_delay() == settings.drift_interval_seconds
    assert settings.role_arn("ns", "env") is None


def test_reads_prefixed_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBORDINARY_OPERATOR_NAMESPACES", "tenants, staging")
    monkeypatch.setenv("WEBORDINARY_OPERATOR_SQS_ENDPOINT_URL", "http://127.0.0.1:5000")
    monkeypatch.setenv("WEBORDINARY_OPERATOR_GATEWAY_POD_LABELS", '{"a.b/c": "d"}')
    monkeypatch.setenv("WEBORDINARY_OPERATOR_DRIFT_INTERVAL_SECONDS", "2.5")
    monkeypatch.setenv(
        "WEBORDINARY_OPERATOR_EDITOR_ROLE_ARN_TEMPLATE", "arn:aws:iam::1:role/editor-{namespace}"
    )
    settings = OperatorSettings()
    assert settings.watch_namespaces() == ["tenants", "staging"]
    assert settings.sqs_endpoint_url == "http://127.0.0.1:5000"
    assert settings.gateway_pod_labels == {"a.b/c": "d"}
    assert settings.drift_interval_seconds == 2.5
    assert settings.role_arn("tenants", "x") == "arn:aws:iam::1:role/editor-tenants"


def test_rejects_nonsense(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBORDINARY_OPERATOR_DRIFT_INTERVAL_SECONDS", "0")
    with pytest.raises(ValidationError, match="drift_interval_seconds"):
        OperatorSettings()


def test_null_turns_optional_ports_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBORDINARY_OPERATOR_METRICS_PORT", "null")
    monkeypatch.setenv("WEBORDINARY_OPERATOR_LIVENESS_PORT", "null")
    settings = OperatorSettings()
    assert settings.metrics_port is None
    assert settings.liveness_endpoint() is None
    assert OperatorSettings(liveness_port=8081).liveness_endpoint() == (
        "http://0.0.0.0:8081/healthz")


def test_liveness_port_zero_is_a_free_port_not_80() -> None:
    from webordinary.operator.__main__ import liveness_endpoint

    settings = OperatorSettings(liveness_port=0, metrics_host="127.0.0.1")
    endpoint = liveness_endpoint(settings)
    assert endpoint is not None
    port = int(endpoint.removeprefix("http://127.0.0.1:").removesuffix("/healthz"))
    assert port not in (0, 80)
    assert liveness_endpoint(OperatorSettings(liveness_port=None)) is None
    assert liveness_endpoint(OperatorSettings(liveness_port=8181)) == "http://0.0.0.0:8181/healthz"
