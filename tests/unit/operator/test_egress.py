"""Editor egress: DNS only to the cluster DNS, no metadata, no pods or Services unless named."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import kubernetes_validate
import pytest

from tests.unit.operator.test_builders import OWNER, make_spec
from webordinary.operator import builders, egress
from webordinary.operator.settings import OperatorSettings

EKS = {
    "cluster_pod_cidrs": ["10.0.0.0/16"],
    "cluster_service_cidrs": ["172.20.0.0/16"],
    "sqs_endpoint_cidrs": ["10.0.200.0/24"],
}


def allowed(rules: list[dict[str, Any]], address: str, port: int, protocol: str = "TCP") -> bool:
    """Whether a NetworkPolicy's egress rules admit a connection to an IP address (ipBlock
    semantics: inside cidr and outside every except). Pod/namespace selectors never match an
    address here, which is what a connection to a bare IP is."""
    ip = ipaddress.ip_address(address)
    for rule in rules:
        if not any(p.get("protocol", "TCP") == protocol and p["port"] == port
                   for p in rule.get("ports", [])):
            continue
        for peer in rule.get("to", []):
            block = peer.get("ipBlock")
            if block is None:
                continue
            net = ipaddress.ip_network(block["cidr"])
            if ip.version != net.version or ip not in net:
                continue
            if any(ip in ipaddress.ip_network(e) for e in block.get("except", [])):
                continue
            return True
    return False


def rules_for(**settings: Any) -> list[dict[str, Any]]:
    policy = builders.network_policy(OWNER, make_spec(), OperatorSettings(**settings))
    for version in ("1.29.0", "1.33.0"):
        kubernetes_validate.validate(policy, version, strict=True)
    rules: list[dict[str, Any]] = policy["spec"]["egress"]
    return rules


@pytest.mark.parametrize(("address", "port", "why"), [
    ("169.254.169.254", 443, "EC2 instance metadata"),
    ("169.254.169.254", 80, "EC2 instance metadata (IMDS answers on 80)"),
    ("169.254.170.23", 443, "the EKS Pod Identity agent's host on another port"),
    ("169.254.170.2", 80, "the ECS credentials endpoint"),
    ("fd00:ec2::254", 443, "IPv6 instance metadata"),
    ("10.0.3.7", 443, "another tenant's editor pod"),
    ("10.0.3.7", 4321, "another tenant's preview port"),
    ("172.20.0.1", 443, "the Kubernetes API Service"),
    ("8.8.8.8", 53, "a foreign DNS resolver"),
    ("1.1.1.1", 22, "ssh anywhere"),
])
def test_editor_cannot_reach(address: str, port: int, why: str) -> None:
    rules = rules_for(**EKS)
    assert not allowed(rules, address, port), why
    assert not allowed(rules, address, port, "UDP"), why


@pytest.mark.parametrize(("address", "port"), [
    ("160.79.104.10", 443),   # the model API, on the internet
    ("140.82.112.3", 443),    # a git host
    ("2606:4700::6810:84e5", 443),
    ("10.0.200.5", 443),      # the SQS VPC endpoint, named inside the pod range
])
def test_editor_reaches_what_it_needs(address: str, port: int) -> None:
    assert allowed(rules_for(**EKS), address, port)


def test_dns_goes_only_to_the_cluster_dns() -> None:
    dns = rules_for(**EKS)[0]
    assert {(p["protocol"], p["port"]) for p in dns["ports"]} == {("UDP", 53), ("TCP", 53)}
    assert dns["to"] == [{
        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
    }]
    local = rules_for(cluster_dns_cidrs=["169.254.20.10/32"])
    assert allowed(local, "169.254.20.10", 53, "UDP")
    assert not allowed(local, "169.254.169.254", 53, "UDP")
    assert not allowed(local, "169.254.20.10", 443)


def test_a_narrow_https_range_names_an_egress_proxy_inside_the_pod_range() -> None:
    rules = rules_for(**{**EKS, "editor_egress_https_cidrs": ["10.0.9.9/32"]})
    assert allowed(rules, "10.0.9.9", 443)
    assert not allowed(rules, "160.79.104.10", 443)
    assert not allowed(rules, "10.0.3.7", 443)


def test_a_dev_sqs_endpoint_port_follows_https_destinations() -> None:
    rules = rules_for(sqs_endpoint_url="http://moto.dev.svc:5000",
                      cluster_pod_cidrs=["10.244.0.0/16"])
    assert allowed(rules, "203.0.113.9", 5000)
    assert not allowed(rules, "10.244.1.2", 5000)
    assert not allowed(rules, "169.254.169.254", 5000)
    named = rules_for(sqs_endpoint_url="http://moto.dev.svc:5000",
                      cluster_pod_cidrs=["10.244.0.0/16"], sqs_endpoint_cidrs=["10.244.7.0/24"])
    assert allowed(named, "10.244.7.3", 5000)
    assert not allowed(named, "203.0.113.9", 5000)


def test_extra_rules_are_appended_as_named() -> None:
    gateway = {"to": [{"podSelector": {"matchLabels": {"app.kubernetes.io/component": "gateway"}}}],
               "ports": [{"protocol": "TCP", "port": 8080}]}
    rules = rules_for(editor_egress_extra_rules=[gateway])
    assert rules[-1] == gateway


def test_ip_block_keeps_only_ranges_inside_and_of_the_same_family() -> None:
    block = egress.ip_block("0.0.0.0/0", ["169.254.0.0/16", "fd00:ec2::/32", "0.0.0.0/0"])
    assert block == {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.0.0/16"]}}
    assert egress.ip_block("10.1.0.0/16", ["10.0.0.0/8"]) == {"ipBlock": {"cidr": "10.1.0.0/16"}}


def test_settings_read_cidr_lists_from_the_chart_form(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBORDINARY_OPERATOR_CLUSTER_POD_CIDRS", "10.0.0.0/16, 10.1.0.0/16")
    monkeypatch.setenv("WEBORDINARY_OPERATOR_EDITOR_EGRESS_EXTRA_RULES", "[]")
    assert OperatorSettings().cluster_pod_cidrs == ["10.0.0.0/16", "10.1.0.0/16"]
    monkeypatch.setenv("WEBORDINARY_OPERATOR_CLUSTER_POD_CIDRS", "10.0.0.0/33")
    with pytest.raises(ValueError, match="cluster_pod_cidrs"):
        OperatorSettings()


def test_extra_egress_rules_come_as_json_and_an_empty_variable_means_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WEBORDINARY_OPERATOR_EDITOR_EGRESS_EXTRA_RULES", "")
    assert OperatorSettings().editor_egress_extra_rules == []
    rule = {"to": [{"ipBlock": {"cidr": "10.9.0.0/16"}}]}
    monkeypatch.setenv("WEBORDINARY_OPERATOR_EDITOR_EGRESS_EXTRA_RULES", json.dumps([rule]))
    assert OperatorSettings().editor_egress_extra_rules == [rule]


def test_the_pod_identity_agent_is_named_only_when_used() -> None:
    assert allowed(rules_for(**EKS), "169.254.170.23", 80)
    assert allowed(rules_for(**EKS), "fd00:ec2::23", 80)
    irsa = rules_for(**EKS, eks_pod_identity_agent=False)
    assert not allowed(irsa, "169.254.170.23", 80)
    assert not allowed(irsa, "169.254.169.254", 80)
