"""Comma-separated environment variables as list settings (the gateway's namespaces, the preview
supervisor's allowed hosts)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from webordinary.contracts.envlists import split_commas
from webordinary.editor.supervisor.settings import SupervisorSettings
from webordinary.gateway.settings import GatewaySettings


def test_split_commas() -> None:
    assert split_commas(" a, b ,,c ") == ["a", "b", "c"]
    assert split_commas("") == []
    assert split_commas(["x"]) == ["x"]


@pytest.mark.parametrize(("variable", "read"), [
    ("WEBORDINARY_GATEWAY_NAMESPACES", lambda: GatewaySettings().namespaces),
    ("WEBORDINARY_PREVIEW_ALLOWED_HOSTS", lambda: SupervisorSettings().allowed_hosts),
])
def test_list_settings_read_one_comma_separated_variable(
        monkeypatch: pytest.MonkeyPatch, variable: str, read: Callable[[], list[str]]) -> None:
    monkeypatch.delenv(variable, raising=False)
    assert read() == []
    monkeypatch.setenv(variable, "tenants-a, tenants-b,")
    assert read() == ["tenants-a", "tenants-b"]
    monkeypatch.setenv(variable, "")
    assert read() == []
    monkeypatch.setenv(variable, '["json", "is not parsed"]')
    assert read() == ['["json"', '"is not parsed"]']
