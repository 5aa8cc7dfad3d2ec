"""Is the sender who they claim to be? SES verdicts, or the local SMTP policy (pure)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict


class Verdict(StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    GRAY = "GRAY"
    PROCESSING_FAILED = "PROCESSING_FAILED"
    DISABLED = "DISABLED"
    NONE = "NONE"


class Verdicts(BaseModel):
    """SES receipt verdicts (or their local equivalent); missing means not evaluated."""

    model_config = ConfigDict(frozen=True)

    spf: Verdict = Verdict.NONE
    dkim: Verdict = Verdict.NONE
    dmarc: Verdict = Verdict.NONE
    spam: Verdict = Verdict.NONE
    virus: Verdict = Verdict.NONE


@dataclass(frozen=True)
class AuthOutcome:
    ok: bool
    reason: str = ""


def check(verdicts: Verdicts, policy: Literal["strict", "dmarc"] = "strict") -> AuthOutcome:
    """strict: SPF, DKIM and DMARC pass; dmarc: DMARC passes and SPF or DKIM does.

    Virus or spam FAIL always rejects. Anything not positively PASS counts as failure: a
    forged sender must never cause an action.
    """
    if verdicts.virus == Verdict.FAIL:
        return AuthOutcome(False, "virus")
    if verdicts.spam == Verdict.FAIL:
        return AuthOutcome(False, "spam")
    if policy == "strict":
        for name in ("spf", "dkim", "dmarc"):
            if getattr(verdicts, name) != Verdict.PASS:
                return AuthOutcome(False, f"{name}-{getattr(verdicts, name).value.lower()}")
        return AuthOutcome(True)
    if verdicts.dmarc != Verdict.PASS:
        return AuthOutcome(False, f"dmarc-{verdicts.dmarc.value.lower()}")
    if Verdict.PASS not in (verdicts.spf, verdicts.dkim):
        return AuthOutcome(False, "spf-and-dkim-not-pass")
    return AuthOutcome(True)


def _domain(address: str) -> str:
    return address.rpartition("@")[2].lower()


def smtp_verdicts(
    peer_ip: str | None, mail_from: str, header_from: str, trusted_networks: Iterable[str]
) -> Verdicts:
    """Local SMTP policy as verdicts: a trusted client network stands in for SPF and DKIM,
    envelope sender aligned with the From header (same domain) stands in for DMARC.
    """
    trusted = False
    if peer_ip:
        try:
            ip = ipaddress.ip_address(peer_ip.split("%", 1)[0])
            trusted = any(ip in ipaddress.ip_network(net, strict=False) for net in trusted_networks)
        except ValueError:
            trusted = False
    network = Verdict.PASS if trusted else Verdict.FAIL
    aligned = bool(mail_from) and _domain(mail_from) == _domain(header_from)
    return Verdicts(
        spf=network, dkim=network, dmarc=Verdict.PASS if aligned and trusted else Verdict.FAIL
    )
