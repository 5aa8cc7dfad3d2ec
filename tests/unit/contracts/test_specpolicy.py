"""The spec rules every writer is held to (the operator and the admission policy share them)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from webordinary.contracts.environment import EditEnvironmentSpec
from webordinary.contracts.specpolicy import (
    PolicyViolation,
    check_credentials_secret,
    check_spec,
    image_allowed,
    parse_quantity,
    reserved_env_name,
)

CAPS = {"cpu": "4", "memory": "8Gi", "ephemeral-storage": "20Gi"}
DEFAULT = "registry.example/webordinary/editor:1.2.3"


def spec(**overrides: Any) -> EditEnvironmentSpec:
    return EditEnvironmentSpec.model_validate({
        "clientId": "ameliastamps", "projectId": "website", "userId": "john",
        "repository": {"url": "https://github.com/ameliastamps/website.git"}, **overrides})


@pytest.mark.parametrize(("text", "value"), [
    ("1", Decimal(1)), ("500m", Decimal("0.5")), ("1.5Gi", Decimal(3 * 2**29)),
    ("8Gi", Decimal(8 * 2**30)), ("2k", Decimal(2000)), ("999Gi", Decimal(999 * 2**30)),
])
def test_quantities(text: str, value: Decimal) -> None:
    assert parse_quantity(text) == value


def test_reserved_names_are_compared_upper_cased() -> None:
    for name in ("ANTHROPIC_BASE_URL", "NODE_OPTIONS", "npm_config_registry", "GIT_SSH_COMMAND",
                 "WEBORDINARY_GIT_TOKEN", "AWS_ROLE_ARN", "CLAUDE_CONFIG_DIR"):
        assert reserved_env_name(name), name
    assert not reserved_env_name("PUBLIC_SITE_TITLE")


def test_images() -> None:
    assert image_allowed(DEFAULT, DEFAULT, [])
    assert not image_allowed("evil/miner", DEFAULT, [])
    assert image_allowed("registry.example/webordinary/editor@sha256:ab", DEFAULT,
                         ["registry.example/webordinary/editor@sha256:*"])
    assert not image_allowed("registry.example/webordinary/editor-evil:1", DEFAULT,
                             ["registry.example/webordinary/editor:*"])


@pytest.mark.parametrize(("overrides", "field"), [
    ({"editor": {"image": "evil/miner"}}, "spec.editor.image"),
    ({"editor": {"env": [{"name": "OK"}, {"name": "NODE_OPTIONS"}]}}, "spec.editor.env"),
    ({"editor": {"resources": {"limits": {"memory": "999Gi"}}}}, "spec.editor.resources.limits"),
    ({"editor": {"resources": {"requests": {"cpu": "4001m"}}}}, "spec.editor.resources.requests"),
    ({"editor": {"resources": {"requests": {"hugepages-2Mi": "1"}}}},
     "spec.editor.resources.requests"),
])
def test_violations_name_the_field(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(PolicyViolation) as caught:
        check_spec(spec(**overrides), DEFAULT, [], CAPS)
    assert caught.value.field == field
    assert str(caught.value).startswith(field + ": ")


def test_within_the_rules_passes() -> None:
    check_spec(spec(editor={"image": DEFAULT, "env": [{"name": "PUBLIC_X"}],
                            "resources": {"requests": {"cpu": "4", "memory": "8Gi"},
                                          "limits": {"ephemeral-storage": "20Gi"}}}),
               DEFAULT, [], CAPS)


def test_git_secret_must_carry_the_client_label() -> None:
    ref = spec(repository={"url": "https://x/y.git", "credentialsSecretRef": {"name": "git"}})
    mine = {"metadata": {"name": "git", "labels": {"webordinary.dev/client": "ameliastamps"}}}
    check_credentials_secret(ref, mine)
    check_credentials_secret(spec(), None)
    for other in (None, {"metadata": {"name": "git"}},
                  {"metadata": {"name": "git", "labels": {"webordinary.dev/client": "other"}}}):
        with pytest.raises(PolicyViolation, match="credentialsSecretRef"):
            check_credentials_secret(ref, other)
