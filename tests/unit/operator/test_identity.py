"""Planning an environment's EKS Pod Identity association: pure, no AWS."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from webordinary.operator import identity
from webordinary.operator.identity import Association, Plan
from webordinary.operator.settings import OperatorSettings

ROLE = "arn:aws:iam::123456789012:role/webordinary-editor"
SETTINGS = OperatorSettings(editor_aws_identity="pod-identity", eks_cluster_name="prod",
                            editor_role_arn=ROLE)
WANT = identity.desired(SETTINGS, "tenants", "acme-site-john", "uid-1")


def ours(**changes: object) -> Association:
    assert WANT is not None
    fields: dict[str, object] = {"association_id": "a-1", "role_arn": ROLE,
                                 "tags": dict(WANT.tags), **changes}
    return Association(**fields)  # type: ignore[arg-type]


def test_desired_names_the_editor_service_account_and_tags_the_environment() -> None:
    assert WANT is not None
    assert (WANT.cluster, WANT.namespace, WANT.service_account, WANT.role_arn) == (
        "prod", "tenants", "acme-site-john-editor", ROLE)
    assert WANT.tags == {"webordinary.dev/namespace": "tenants",
                         "webordinary.dev/service-account": "acme-site-john-editor",
                         "webordinary.dev/name": "acme-site-john",
                         "webordinary.dev/uid": "uid-1"}


def test_plan_writes_only_what_differs() -> None:
    assert WANT is not None
    assert identity.plan(WANT, []) == Plan("create")
    assert identity.plan(WANT, [ours()]) == Plan("keep", "a-1")
    assert identity.plan(WANT, [ours(tags={**WANT.tags, "webordinary.dev/uid": "old"})]) == (
        Plan("keep", "a-1"))  # an earlier environment of the same name: adopted
    assert identity.plan(WANT, [ours(role_arn=ROLE + "-old")]) == Plan("update", "a-1")
    assert identity.plan(WANT, [ours(disable_session_tags=True)]) == Plan("update", "a-1")


def test_foreign_associations_are_conflicts_and_never_deleted() -> None:
    assert WANT is not None
    # One made by hand with the editor role (the install step of earlier versions): kept.
    assert identity.plan(WANT, [ours(tags={})]) == Plan("keep", "a-1")
    assert identity.deletable(WANT, [ours(tags={})]) == []
    untagged = ours(tags={}, role_arn=ROLE + "-other")
    other = ours(tags={"webordinary.dev/namespace": "tenants",
                       "webordinary.dev/name": "someone-else"})
    for found in (untagged, other):
        step = identity.plan(WANT, [found])
        assert step.action == "conflict"
        assert step.problem is not None
        assert "webordinary.dev/name=acme-site-john" in step.problem
        assert identity.deletable(WANT, [found]) == []
    assert identity.deletable(WANT, [ours()]) == ["a-1"]


def test_modes() -> None:
    assert OperatorSettings().aws_identity() == "none"
    assert identity.desired(OperatorSettings(), "ns", "x", "u") is None
    irsa = OperatorSettings(editor_role_arn_template="arn:aws:iam::1:role/{name}")
    assert irsa.aws_identity() == "irsa"
    assert identity.unmanaged(irsa, "ns", "x").reason == "Irsa"
    assert identity.unmanaged(OperatorSettings(), "ns", "x").reason == "NotManaged"
    assert SETTINGS.role_arn("ns", "x") is None  # no IRSA annotation with Pod Identity


@pytest.mark.parametrize("values", [
    {"editor_aws_identity": "pod-identity"},
    {"editor_aws_identity": "pod-identity", "eks_cluster_name": "prod"},
    {"editor_aws_identity": "pod-identity", "eks_cluster_name": "prod", "editor_role_arn": ROLE,
     "editor_role_arn_template": "arn:aws:iam::1:role/{name}"},
    {"editor_aws_identity": "irsa"},
])
def test_incomplete_identity_settings_are_refused(values: dict[str, str]) -> None:
    with pytest.raises(ValidationError, match="editor_aws_identity"):
        OperatorSettings(**values)  # type: ignore[arg-type]
