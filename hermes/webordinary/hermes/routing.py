"""Who may edit which project: the SRE-edited routing config and the lookup (pure).

The chart mounts a ConfigMap with the key ``routing.yaml``; Hermes re-reads it when its
modification time changes, and keeps the last good version when an edit does not validate.

.. code-block:: yaml

    senders:              # who may edit: an address (or *@domain) -> client + user
      - address: john@ameliastamps.com
        clientId: ameliastamps
        userId: john
      - address: "*@ameliastamps.com"   # anyone at the domain, as one shared user
        clientId: ameliastamps
        userId: team
    projects:             # recipient address -> a project of a client, with its repository
      - address: website@edit.webordinary.dev
        clientId: ameliastamps
        projectId: website
        repository: {url: "https://github.com/ameliastamps/website.git", branch: main}

An exact sender address wins over a ``*@domain`` rule. A sender may appear for several clients;
the project (from the recipient address) decides which client applies.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from webordinary.contracts.base import WireModel
from webordinary.contracts.environment import ID_PATTERN, Repository

log = logging.getLogger(__name__)

Address = Annotated[str, Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")]
Id = Annotated[str, Field(pattern=ID_PATTERN)]


class SenderRule(WireModel):
    address: Address
    client_id: Id
    user_id: Id

    @field_validator("address")
    @classmethod
    def _lower(cls, value: str) -> str:
        local = value.partition("@")[0]
        if "*" in local and local != "*":
            raise ValueError("only '*@domain' wildcards are supported")
        return value.lower()


class ProjectRule(WireModel):
    address: Address
    client_id: Id
    project_id: Id
    repository: Repository

    @field_validator("address")
    @classmethod
    def _lower(cls, value: str) -> str:
        if "*" in value:
            raise ValueError("project addresses are exact (no wildcards)")
        return value.lower()


class RoutingConfig(WireModel):
    """The whole routing file."""

    senders: list[SenderRule] = Field(default_factory=list)
    projects: list[ProjectRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> RoutingConfig:
        seen_projects = [p.address for p in self.projects]
        if len(seen_projects) != len(set(seen_projects)):
            raise ValueError("a project address appears twice")
        seen_senders = [(s.address, s.client_id) for s in self.senders]
        if len(seen_senders) != len(set(seen_senders)):
            raise ValueError("a sender address appears twice for the same client")
        return self


class Miss(StrEnum):
    UNKNOWN_PROJECT = "unknown-project"
    UNKNOWN_SENDER = "unknown-sender"
    NOT_AUTHORIZED = "not-authorized"


@dataclass(frozen=True)
class Route:
    client_id: str
    project_id: str
    user_id: str
    repository: Repository
    address: str
    """The project address the mail was sent to (replies come from our own address)."""


def _strip_tag(address: str) -> str:
    local, at, domain = address.lower().partition("@")
    return f"{local.split('+', 1)[0]}{at}{domain}"


def route(config: RoutingConfig, sender: str, recipients: Iterable[str]) -> Route | Miss:
    """The project and identity for a mail, or why there is none."""
    by_address = {p.address: p for p in config.projects}
    project = None
    for rcpt in recipients:
        project = by_address.get(rcpt.lower()) or by_address.get(_strip_tag(rcpt))
        if project:
            break
    sender = sender.lower()
    domain_rule = f"*@{sender.rpartition('@')[2]}"
    known = [s for s in config.senders if s.address in (sender, domain_rule)]
    if project is None:
        return Miss.UNKNOWN_PROJECT if known else Miss.UNKNOWN_SENDER
    mine = [s for s in known if s.client_id == project.client_id]
    if not mine:
        return Miss.NOT_AUTHORIZED if known else Miss.UNKNOWN_SENDER
    rule = next((s for s in mine if s.address == sender), mine[0])
    return Route(
        client_id=project.client_id,
        project_id=project.project_id,
        user_id=rule.user_id,
        repository=project.repository,
        address=project.address,
    )


def known_sender(
    config: RoutingConfig, addresses: Iterable[str], preferred: str = ""
) -> str | None:
    """The address to answer among several: `preferred` (the envelope sender) when routing
    knows it and it is one of them, else the first one routing knows; None if none is known."""
    rules = {s.address for s in config.senders}

    def known(address: str) -> bool:
        return address in rules or f"*@{address.rpartition('@')[2]}" in rules

    candidates = [a.lower() for a in addresses]
    if preferred and preferred.lower() in candidates and known(preferred.lower()):
        return preferred.lower()
    return next((a for a in candidates if known(a)), None)


def load_routing(text: str) -> RoutingConfig:
    """Parse and validate routing YAML (raises ValueError with the reason)."""
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"routing config is not valid YAML: {exc}") from exc
    try:
        return RoutingConfig.model_validate(data)
    except ValidationError as exc:
        raise ValueError(f"routing config is invalid: {exc}") from exc


class RoutingSource:
    """The routing file, re-read when its mtime or size changes; last good config on error."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._config = RoutingConfig()
        self.error: str | None = None

    def get(self) -> RoutingConfig:
        try:
            stat = os.stat(self.path)
        except OSError as exc:
            if self._stamp is None and self.error is None:
                self.error = f"routing file unreadable: {exc}"
                log.error("%s", self.error)
            return self._config
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self._config = load_routing(self.path.read_text(encoding="utf-8"))
                self.error = None
                log.info(
                    "routing loaded: %d senders, %d projects",
                    len(self._config.senders), len(self._config.projects),
                )
            except (OSError, ValueError) as exc:
                self.error = str(exc)
                log.error("keeping the previous routing config: %s", exc)
        return self._config
