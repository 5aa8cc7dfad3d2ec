"""The platform's spec rules (contracts.specpolicy) applied by the operator: a spec that breaks
them gets `InvalidSpec` and no children change, even where no admission policy runs."""

from __future__ import annotations

from typing import Final

from webordinary.contracts.environment import EditEnvironmentSpec
from webordinary.contracts.specpolicy import (
    PolicyViolation,
    check_credentials_secret,
    check_spec,
)
from webordinary.operator.adapters.kube import KubeClient
from webordinary.operator.builders import Kind
from webordinary.operator.settings import OperatorSettings

SECRET: Final = Kind("v1", "Secret", "secrets")


def spec_problem(spec: EditEnvironmentSpec, settings: OperatorSettings) -> str | None:
    """What breaks the rules that need only settings (image, env names, resources)."""
    try:
        check_spec(spec, settings.editor_image, settings.editor_allowed_images,
                   settings.editor_max_resources)
    except PolicyViolation as violation:
        return str(violation)
    return None


async def problem(
    kube: KubeClient, namespace: str, spec: EditEnvironmentSpec, settings: OperatorSettings
) -> str | None:
    """spec_problem, then the git Secret's client label (one GET when a Secret is named)."""
    found = spec_problem(spec, settings)
    ref = spec.repository.credentials_secret_ref
    if found is not None or ref is None:
        return found
    secret = await kube.get(SECRET, namespace, ref.name)
    try:
        check_credentials_secret(spec, secret)
    except PolicyViolation as violation:
        return str(violation)
    return None
