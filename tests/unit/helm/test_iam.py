"""The IAM documents beside the chart: exactly the actions the code calls, and an editor's
policy never matches another environment's queues or attachments."""

from __future__ import annotations

import ast
from functools import cache
from typing import Any

import boto3
import pytest

from tests.unit.helm.chart_render import CHART, ROOT
from tests.unit.helm.iam_eval import Request, actions, allowed, load
from webordinary.contracts import naming
from webordinary.operator import builders
from webordinary.operator.adapters.sqs import Owner

IAM = CHART / "iam"
ACCOUNT, REGION, BUCKET = "123456789012", "eu-west-1", "webordinary-mail"
BASE = {"ACCOUNT_ID": ACCOUNT, "REGION": REGION, "BUCKET": BUCKET}
# Operations whose IAM action has another name (AWS's service authorization reference).
ACTION_OF = {"s3:HeadObject": "s3:GetObject", "s3:ListObjectsV2": "s3:ListBucket"}
# A parameter that needs one more action: (operation, keyword) -> action.
IMPLIED = {("PutObject", "Tagging"): "s3:PutObjectTagging", ("CreateQueue", "tags"): "sqs:TagQueue",
           # A Pod Identity association passes its role to EKS.
           ("CreatePodIdentityAssociation", "roleArn"): "iam:PassRole",
           ("UpdatePodIdentityAssociation", "roleArn"): "iam:PassRole"}
COMPONENTS = {"operator": "operator.json", "hermes": "hermes.json",
              "editor": "editor-pod-identity.json"}


@cache
def called_actions(component: str) -> frozenset[str]:
    """IAM actions of every AWS call in a component's code: the services it makes boto3 clients
    for, and each client method (`client.receive_message`) or operation name passed as a string
    (`self._call("CreateQueue", ...)`) of those services."""
    services: set[str] = set()
    attributes: set[str] = set()
    strings: set[str] = set()
    keywords: set[tuple[str, str]] = set()  # (method or operation named in a call, keyword)
    for path in (ROOT / component).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call):
                named = [n.attr if isinstance(n, ast.Attribute) else n.value
                         for n in (node.func, *node.args)
                         if isinstance(n, ast.Attribute)
                         or (isinstance(n, ast.Constant) and isinstance(n.value, str))]
                keywords |= {(str(n), k.arg) for n in named for k in node.keywords if k.arg}
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "client" and node.args
                    and isinstance(node.args[0], ast.Constant)):
                services.add(str(node.args[0].value))
            elif isinstance(node, ast.Attribute):
                attributes.add(node.attr)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                strings.add(node.value)
    found: set[str] = set()
    session = boto3.session.Session(region_name="us-east-1", aws_access_key_id="x",
                                    aws_secret_access_key="x")
    for service in services:
        mapping: dict[str, str] = session.client(service).meta.method_to_api_mapping  # type: ignore[call-overload]
        operations = set(mapping.values())
        names = {mapping[a] for a in attributes if a in mapping} | (strings & operations)
        found |= {ACTION_OF.get(f"{service}:{op}", f"{service}:{op}") for op in names}
        used = {(mapping.get(n, n), k) for n, k in keywords}
        found |= {action for (op, k), action in IMPLIED.items()
                  if (op, k) in used and op in operations}
    return frozenset(found)


def test_the_scan_sees_the_calls_we_know_of() -> None:
    assert {"sqs:CreateQueue", "sqs:TagQueue", "sqs:ListQueues", "eks:CreatePodIdentityAssociation",
            "eks:ListPodIdentityAssociations", "iam:PassRole"} <= called_actions("operator")
    assert {"ses:SendRawEmail", "sqs:SendMessage", "s3:PutObject",
            "s3:PutObjectTagging"} <= called_actions("hermes")
    assert {"sqs:ReceiveMessage", "sqs:ChangeMessageVisibility"} <= called_actions("editor")


@pytest.mark.parametrize("component", sorted(COMPONENTS))
def test_policy_allows_exactly_what_the_code_calls(component: str) -> None:
    document = json_of(COMPONENTS[component])
    called, granted = called_actions(component), actions(document)
    assert not called - granted, (
        f"{component} calls {sorted(called - granted)} but iam/{COMPONENTS[component]} does not "
        "allow it: add the action (on the narrowest resource) to the policy")
    assert not granted - called, (
        f"iam/{COMPONENTS[component]} allows {sorted(granted - called)} that {component} never "
        "calls: remove it")
    per_environment = actions(json_of("editor-environment.json"))
    assert per_environment == actions(json_of("editor-pod-identity.json"))


def json_of(name: str, **extra: str) -> dict[str, Any]:
    values = {**BASE, "CONTAINER_ID": "x", "ENVIRONMENT": "x", "INBOUND_QUEUE": "inbound",
              "FROM_ADDRESS": "edit@webordinary.dev", "NAMESPACE": "tenants", "CLUSTER": "prod",
              "OIDC_PROVIDER": "oidc.eks.eu-west-1.amazonaws.com/id/ABC",
              "SERVICE_ACCOUNT": "x", "EDITOR_ROLE": "webordinary-editor", **extra}
    return load(IAM / name, values)


class Environment:
    """One tenant's environment: its queues (with the tags the operator sets), its attachments
    (tagged like its queues) and the session tags EKS Pod Identity gives its editor."""

    def __init__(self, namespace: str, client: str, project: str, user: str) -> None:
        self.namespace = namespace
        self.name = naming.environment_name(client, project, user)
        self.service_account = naming.child_name(self.name, builders.ROLE_EDITOR)
        self.queues = {role: f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue}"
                       for role, queue in naming.queue_names(client, project, user).items()}
        self.tags = Owner(namespace, self.name, "uid-" + self.name).tags()
        self.attachment = f"arn:aws:s3:::{BUCKET}/attachments/{self.name}/t1/c1/logo.png"

    def principal(self) -> dict[str, str]:
        return {"aws:PrincipalTag/kubernetes-namespace": self.namespace,
                "aws:PrincipalTag/kubernetes-service-account": self.service_account,
                "aws:PrincipalTag/eks-cluster-name": "prod"}

    def resource_tags(self) -> dict[str, str]:
        return {f"aws:ResourceTag/{k}": v for k, v in self.tags.items()}

    def object_tags(self) -> dict[str, str]:
        return {f"s3:ExistingObjectTag/{k}": v for k, v in self.tags.items()}


JOHN = Environment("tenants", "ameliastamps", "website", "john")
JANE = Environment("tenants", "otherclient", "shop", "jane")
# Same client, project and user in another namespace (a staging copy): other queues' tags.
STAGING = Environment("staging", "ameliastamps", "website", "john")
LONG = Environment("tenants", "A" * 60, "Website.Main", "john+x@example.com")


def editor_requests(editor: Environment, target: Environment) -> list[Request]:
    """Every call the editor code makes, aimed at `target`'s resources."""
    sqs = {a for a in called_actions("editor") if a.startswith("sqs:")}
    requests = [
        Request(action, target.queues[role], {**editor.principal(), **target.resource_tags()})
        for action in sorted(sqs) for role in ("input", "output")
    ]
    requests.append(Request("s3:GetObject", target.attachment,
                            {**editor.principal(), **target.object_tags()}))
    return requests


@pytest.mark.parametrize("editor", [JOHN, JANE, LONG], ids=lambda e: e.name[:20])
def test_pod_identity_editor_reaches_its_own_queues_and_attachments(editor: Environment) -> None:
    policy = json_of("editor-pod-identity.json")
    for request in editor_requests(editor, editor):
        assert allowed(policy, request), request


@pytest.mark.parametrize(("editor", "target"), [(JOHN, JANE), (JANE, JOHN), (JOHN, STAGING),
                                                (STAGING, JOHN), (LONG, JOHN)],
                         ids=["john-jane", "jane-john", "john-staging", "staging-john", "long"])
def test_pod_identity_editor_never_matches_another_environment(
    editor: Environment, target: Environment
) -> None:
    policy = json_of("editor-pod-identity.json")
    for request in editor_requests(editor, target):
        assert not allowed(policy, request), request


def test_pod_identity_editor_without_tags_gets_nothing() -> None:
    policy = json_of("editor-pod-identity.json")
    untagged = Request("sqs:ReceiveMessage", JOHN.queues["input"], JOHN.principal())
    no_session_tags = Request("sqs:ReceiveMessage", JOHN.queues["input"], JOHN.resource_tags())
    dlq = Request("sqs:ReceiveMessage", JOHN.queues["dlq"],
                  {**JOHN.principal(), **JOHN.resource_tags()})
    assert not any(allowed(policy, r) for r in (untagged, no_session_tags, dlq))


def test_per_environment_role_matches_only_its_own_arns() -> None:
    policy = json_of("editor-environment.json", CONTAINER_ID=naming.container_id(
        "ameliastamps", "website", "john"), ENVIRONMENT=JOHN.name)
    for request in editor_requests(JOHN, JOHN):
        assert allowed(policy, request), request
    for target in (JANE, LONG):
        for request in editor_requests(JOHN, target):
            assert not allowed(policy, request), request
    # A longer name that starts with john's: no wildcard lets it through.
    longer = Environment("tenants", "ameliastamps", "website", "johnny")
    assert not any(allowed(policy, r) for r in editor_requests(JOHN, longer))


def test_queues_carry_the_editor_service_account_tag() -> None:
    for env in (JOHN, LONG):
        assert env.tags["webordinary.dev/service-account"] == env.service_account
        assert len(env.service_account) <= naming.DNS_LABEL_MAX


def test_operator_and_hermes_policies_stay_on_webordinary_resources() -> None:
    operator, hermes = json_of("operator.json"), json_of("hermes.json")
    foreign = f"arn:aws:sqs:{REGION}:{ACCOUNT}:billing-events"
    for action in {a for a in called_actions("operator") if a.startswith("sqs:")} - {
            "sqs:ListQueues"}:
        assert allowed(operator, Request(action, JOHN.queues["input"]))
        assert not allowed(operator, Request(action, foreign))
    cluster = f"arn:aws:eks:{REGION}:{ACCOUNT}:cluster/prod"
    association = f"arn:aws:eks:{REGION}:{ACCOUNT}:podidentityassociation/prod/a-1"
    for action in {a for a in called_actions("operator") if a.startswith("eks:")}:
        assert allowed(operator, Request(action, association))
        assert allowed(operator, Request(action, cluster))
        assert not allowed(operator, Request(action, cluster.replace("/prod", "/other")))
    to_eks = {"iam:PassedToService": "pods.eks.amazonaws.com"}
    editor_role = f"arn:aws:iam::{ACCOUNT}:role/webordinary-editor"
    assert allowed(operator, Request("iam:PassRole", editor_role, to_eks))
    assert not allowed(operator, Request("iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/admin",
                                         to_eks))
    assert not allowed(operator, Request("iam:PassRole", editor_role,
                                         {"iam:PassedToService": "ec2.amazonaws.com"}))
    assert allowed(hermes, Request("sqs:SendMessage", JANE.queues["input"]))
    assert not allowed(hermes, Request("sqs:SendMessage", JANE.queues["output"]))
    assert not allowed(hermes, Request("sqs:ReceiveMessage", JANE.queues["input"]))
    assert not allowed(hermes, Request("sqs:SendMessage", foreign))
    assert allowed(hermes, Request("ses:SendRawEmail",
                                   f"arn:aws:ses:{REGION}:{ACCOUNT}:identity/webordinary.dev",
                                   {"ses:FromAddress": "edit@webordinary.dev"}))
    assert not allowed(hermes, Request("ses:SendRawEmail",
                                       f"arn:aws:ses:{REGION}:{ACCOUNT}:identity/webordinary.dev",
                                       {"ses:FromAddress": "ceo@webordinary.dev"}))


@pytest.mark.parametrize("name", sorted(p.name for p in IAM.glob("*.json")))
def test_every_document_loads_with_its_placeholders(name: str) -> None:
    document = json_of(name)
    assert document["Version"] == "2012-10-17"
    assert all(s["Effect"] in ("Allow", "Deny") for s in document["Statement"])


def test_hermes_tags_attachments_like_the_editor_policy_expects() -> None:
    from webordinary.contracts import ownership

    for env in (JOHN, LONG):
        tags = ownership.tags(env.namespace, env.name)
        context = {**env.principal(), **{f"s3:ExistingObjectTag/{k}": v for k, v in tags.items()}}
        assert allowed(json_of("editor-pod-identity.json"),
                       Request("s3:GetObject", env.attachment, context))
