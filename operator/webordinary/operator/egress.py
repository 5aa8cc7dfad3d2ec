"""Where an editor pod may connect to: the egress half of its NetworkPolicy (pure).

Every container of the pod (editor, preview, credential proxy) shares one network namespace, so
one policy covers them all; localhost between them is never filtered. What is allowed:

- DNS, only to the cluster DNS pods (and node-local DNS addresses when named);
- HTTPS (443) to `editor_egress_https_cidrs` (default: anywhere) except the link-local range
  (instance metadata), the cluster's pod and service ranges, unless a CIDR there is named;
- the SQS endpoint's port, to the named endpoint CIDRs (a VPC interface endpoint) or, when none
  are named, to the same destinations as HTTPS;
- the EKS Pod Identity agent (169.254.170.23:80) when editors get AWS credentials from it
  (instance metadata, 169.254.169.254, stays closed);
- extra rules an installer names (the gateway, an egress proxy).

Plain NetworkPolicy cannot name hosts (api.anthropic.com, github.com): see the FQDN options in
docs/operations.md (Cilium toFQDNs, or a VPC egress proxy named in `editor_egress_https_cidrs`).
"""

from __future__ import annotations

import functools
import ipaddress
from typing import Any, Final
from urllib.parse import urlparse

from webordinary.operator.settings import OperatorSettings

# Instance metadata (IPv4 169.254.169.254, EKS pod identity agent 169.254.170.23) and the
# IPv6 metadata range of EC2 (fd00:ec2::254, fd00:ec2::23).
LINK_LOCAL: Final = ("169.254.0.0/16", "fd00:ec2::/32")
ANYWHERE: Final = {4: "0.0.0.0/0", 6: "::/0"}
# The EKS Pod Identity agent (node-local, port 80): it answers only a container that holds
# the pod's projected token (the editor's; the operator keeps it from the other containers).
POD_IDENTITY_AGENT: Final = ("169.254.170.23/32", "fd00:ec2::23/128")
HTTPS_PORT: Final = 443
DNS_PORT: Final = 53

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def denied_ranges(settings: OperatorSettings) -> list[str]:
    """What egress never reaches unless named: metadata, pods, services."""
    return [*LINK_LOCAL, *settings.cluster_pod_cidrs, *settings.cluster_service_cidrs]


def ip_block(cidr: str, denied: list[str]) -> dict[str, Any]:
    """`cidr` minus every denied range inside it (a denied range that contains the whole of
    `cidr` does not apply: naming a narrower CIDR is how an installer allows it)."""
    block, excepted = _ip_block(cidr, tuple(denied))
    if excepted:
        return {"ipBlock": {"cidr": block, "except": list(excepted)}}
    return {"ipBlock": {"cidr": block}}


@functools.lru_cache(maxsize=256)
def _ip_block(cidr: str, denied: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    """The CIDR and its exceptions, parsed once per setting (every NetworkPolicy built parsed
    them again: a tenth of building an environment's children)."""
    network = ipaddress.ip_network(cidr, strict=False)
    excepted: list[str] = []
    for raw in denied:
        other = ipaddress.ip_network(raw, strict=False)
        if other.version == network.version and _strictly_inside(other, network):
            excepted.append(str(other))
    return str(network), tuple(sorted(set(excepted), key=excepted.index))


def _strictly_inside(inner: Network, outer: Network) -> bool:
    return inner != outer and inner.subnet_of(outer)  # type: ignore[arg-type]


def sqs_port(settings: OperatorSettings) -> int:
    """The SQS endpoint's port: 443 for AWS, the URL's port for a dev endpoint (moto)."""
    if not settings.sqs_endpoint_url:
        return HTTPS_PORT
    return _url_port(settings.sqs_endpoint_url)


@functools.lru_cache(maxsize=16)
def _url_port(url: str) -> int:
    endpoint = urlparse(url)
    return endpoint.port or (80 if endpoint.scheme == "http" else HTTPS_PORT)


def dns_rule(settings: OperatorSettings) -> dict[str, Any]:
    peer: dict[str, Any] = {"podSelector": {"matchLabels": dict(settings.cluster_dns_pod_labels)}}
    peer["namespaceSelector"] = {"matchLabels": {
        "kubernetes.io/metadata.name": settings.cluster_dns_namespace,
    }}
    peers = [peer, *({"ipBlock": {"cidr": cidr}} for cidr in settings.cluster_dns_cidrs)]
    return {
        "to": peers,
        "ports": [{"protocol": "UDP", "port": DNS_PORT}, {"protocol": "TCP", "port": DNS_PORT}],
    }


def editor_egress(settings: OperatorSettings) -> list[dict[str, Any]]:
    """The egress rules of an editor pod's NetworkPolicy."""
    denied = denied_ranges(settings)
    public = [ip_block(cidr, denied) for cidr in settings.editor_egress_https_cidrs]
    rules: list[dict[str, Any]] = [dns_rule(settings)]
    if public:
        rules.append({"to": public, "ports": [{"protocol": "TCP", "port": HTTPS_PORT}]})
    port = sqs_port(settings)
    if settings.sqs_endpoint_cidrs:
        rules.append({
            "to": [{"ipBlock": {"cidr": cidr}} for cidr in settings.sqs_endpoint_cidrs],
            "ports": [{"protocol": "TCP", "port": port}],
        })
    elif port != HTTPS_PORT and public:
        rules.append({"to": public, "ports": [{"protocol": "TCP", "port": port}]})
    if settings.eks_pod_identity_agent:
        rules.append({
            "to": [{"ipBlock": {"cidr": cidr}} for cidr in POD_IDENTITY_AGENT],
            "ports": [{"protocol": "TCP", "port": 80}],
        })
    rules.extend(settings.editor_egress_extra_rules)
    return rules
