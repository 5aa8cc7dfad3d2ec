"""The CRD file is generated from the pydantic models and accepts what the models accept."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from webordinary.contracts.environment import EditEnvironmentSpec, EditEnvironmentStatus
from webordinary.operator import crd

CRD_FILE = Path(__file__).parents[3] / "crds" / "editenvironments.webordinary.dev.yaml"


def _walk(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        found.append(node)
        for value in node.values():
            found.extend(_walk(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_walk(value))
    return found


def test_file_equals_generated_output() -> None:
    assert CRD_FILE.read_text() == crd.render(), (
        "crds/ is stale: run `python -m webordinary.operator.crd > " + str(CRD_FILE) + "`"
    )


def test_crd_is_a_valid_kubernetes_object() -> None:
    kubernetes_validate.validate(crd.build_crd(), "1.33.0", strict=True)


def test_names_and_subresources() -> None:
    spec = crd.build_crd()["spec"]
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["shortNames"] == ["ee", "editenv"]
    assert spec["names"]["categories"] == ["webordinary"]
    version = spec["versions"][0]
    assert version["name"] == "v1alpha1"
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c.get("priority", 0) for c in version["additionalPrinterColumns"]}
    for name in ("Client", "Project", "User", "Phase", "Sessions", "Ready", "Last Activity", "Age"):
        assert columns[name] == 0


def test_schema_is_structural() -> None:
    schema = crd.build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for node in _walk(schema):
        assert "$ref" not in node
        assert "anyOf" not in node
        assert "title" not in node
        assert node.get("additionalProperties", {}) is not False
        if "properties" in node:
            assert node.get("type") == "object"


def test_ids_are_immutable_by_cel() -> None:
    props = crd.spec_schema()["properties"]
    for field in ("clientId", "projectId", "userId"):
        assert props[field]["x-kubernetes-validations"][0]["rule"] == "self == oldSelf"


def _apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """Structural defaulting as the API server does it (enough for this schema)."""
    if isinstance(value, dict) and "properties" in schema:
        for key, sub in schema["properties"].items():
            if key not in value and "default" in sub:
                value[key] = sub["default"]
            if key in value:
                value[key] = _apply_defaults(sub, value[key])
    return value


GOOD_SPEC = {
    "clientId": "ameliastamps",
    "projectId": "website",
    "userId": "john",
    "repository": {"url": "https://github.com/ameliastamps/website.git"},
    "sessions": ["1a2b3c4d"],
}


def test_defaults_match_the_models() -> None:
    schema = crd.spec_schema()
    defaulted = _apply_defaults(schema, dict(GOOD_SPEC))
    jsonschema.validate(defaulted, schema)
    assert EditEnvironmentSpec.model_validate(defaulted).to_wire() == (
        EditEnvironmentSpec.model_validate(GOOD_SPEC).to_wire()
    )
    assert defaulted["storage"]["deletionPolicy"] == "Retain"
    assert defaulted["queues"]["maxReceiveCount"] == 3
    assert defaulted["idleTimeout"] == "20m"


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"clientId": "bad id"}, "clientId"),
        ({"sessions": ["Not_A_Thread"]}, "sessions"),
        ({"idleTimeout": "20 minutes"}, "idleTimeout"),
        ({"queues": {"maxReceiveCount": 0}}, "maxReceiveCount"),
        ({"storage": {"deletionPolicy": "Shred"}}, "deletionPolicy"),
    ],
)
def test_schema_rejects_what_the_model_rejects(patch: dict[str, Any], field: str) -> None:
    spec = {**GOOD_SPEC, **patch}
    with pytest.raises(jsonschema.ValidationError) as err:
        jsonschema.validate(spec, crd.spec_schema())
    assert field in "/".join(str(p) for p in err.value.absolute_path) or field in str(err.value)
    with pytest.raises(ValueError, match=field):
        EditEnvironmentSpec.model_validate(spec)


def test_status_from_the_model_fits_the_schema() -> None:
    status = EditEnvironmentStatus.model_validate(
        {
            "phase": "Ready",
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "Reconciled",
                 "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 1}
            ],
            "queues": {"input": "http://q/1/in"},
        }
    )
    jsonschema.validate(status.to_wire(), crd.status_schema())


def test_crd_yaml_round_trips() -> None:
    assert yaml.safe_load(crd.render()) == crd.build_crd()
