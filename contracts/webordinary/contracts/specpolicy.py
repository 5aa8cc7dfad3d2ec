"""What an EditEnvironment spec may ask for, whoever wrote it (pure).

The operator refuses a spec that breaks these rules with an `InvalidSpec` condition, and the
chart's ValidatingAdmissionPolicy refuses the write itself on Kubernetes >= 1.30: the same
rules, the same messages, so the API server and the operator never disagree.

- `spec.editor.image`: the operator's editor image, or one of the allowlisted images (an entry
  ending in `*` allows every image that starts with the rest, e.g. `registry/editor@sha256:*`);
- `spec.editor.env`: no name under a reserved prefix (compared upper-cased: npm reads
  `npm_config_*` too): those carry the platform's contract, credentials or runtime behaviour;
- `spec.editor.resources`: only the capped resource names, each at most its cap;
- `spec.repository.credentialsSecretRef`: the Secret must carry the environment's client label.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from webordinary.contracts.environment import LABEL_CLIENT, EditEnvironmentSpec
from webordinary.contracts.naming import label_value

RESERVED_ENV_PREFIXES: Final = ("ANTHROPIC_", "AWS_", "CLAUDE_", "GIT_", "NODE_", "NPM_",
                                "WEBORDINARY_")
_SUFFIXES: Final = {
    "": Decimal(1), "m": Decimal("0.001"),
    "k": Decimal(10) ** 3, "M": Decimal(10) ** 6, "G": Decimal(10) ** 9, "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15, "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40, "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
}
_QUANTITY: Final = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")


class PolicyViolation(ValueError):
    """A spec field the platform does not allow; names the field like SpecError does."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def parse_quantity(text: str) -> Decimal:
    """A Kubernetes quantity as a number (the forms the CRD's pattern admits)."""
    match = _QUANTITY.match(text.strip())
    if match is None:
        raise ValueError(f"not a quantity: {text!r}")
    try:
        return Decimal(match.group(1)) * _SUFFIXES[match.group(2) or ""]
    except InvalidOperation as error:
        raise ValueError(f"not a quantity: {text!r}") from error


def reserved_env_name(name: str) -> bool:
    return name.upper().startswith(RESERVED_ENV_PREFIXES)


def image_allowed(image: str, default: str, allowlist: Iterable[str]) -> bool:
    if image == default:
        return True
    for entry in allowlist:
        if entry.endswith("*") and image.startswith(entry[:-1]):
            return True
        if image == entry:
            return True
    return False


def check_spec(spec: EditEnvironmentSpec, default_image: str, allowed_images: Iterable[str],
               max_resources: Mapping[str, str]) -> None:
    """Raise PolicyViolation for the first field that breaks the rules above."""
    editor = spec.editor
    if editor.image is not None and not image_allowed(editor.image, default_image,
                                                      allowed_images):
        raise PolicyViolation("spec.editor.image",
                              f"{editor.image} is not an allowed editor image "
                              "(the operator's image or editor.allowedImages)")
    reserved = [var.name for var in editor.env if reserved_env_name(var.name)]
    if reserved:
        raise PolicyViolation("spec.editor.env",
                              f"{', '.join(reserved)} reserved (names starting with "
                              f"{', '.join(RESERVED_ENV_PREFIXES)} are set by the platform only)")
    if editor.resources is not None:
        for kind, values in (("requests", editor.resources.requests),
                             ("limits", editor.resources.limits)):
            over = [f"{name}={value}" for name, value in values.items()
                    if name not in max_resources
                    or parse_quantity(value) > parse_quantity(max_resources[name])]
            if over:
                raise PolicyViolation(f"spec.editor.resources.{kind}",
                                      f"{', '.join(over)} above the cap "
                                      f"({caps_text(max_resources)})")


def caps_text(max_resources: Mapping[str, str]) -> str:
    return ", ".join(f"{name} {value}" for name, value in sorted(max_resources.items()))


def check_credentials_secret(spec: EditEnvironmentSpec, secret: Mapping[str, Any] | None) -> None:
    """The git Secret must exist and carry the environment's client label: a spec cannot hand
    an editor (and its repository host) a Secret of another client or of the platform."""
    ref = spec.repository.credentials_secret_ref
    if ref is None:
        return
    field = "spec.repository.credentialsSecretRef"
    wanted = label_value(spec.client_id)
    if secret is None:
        raise PolicyViolation(field, f"Secret {ref.name} does not exist (create it with the "
                                     f"label {LABEL_CLIENT}={wanted})")
    labels = (secret.get("metadata") or {}).get("labels") or {}
    if labels.get(LABEL_CLIENT) != wanted:
        raise PolicyViolation(field, f"Secret {ref.name} is not labelled {LABEL_CLIENT}={wanted} "
                                     "(git Secrets must belong to the environment's client)")
