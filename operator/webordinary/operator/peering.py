"""High availability: kopf peering with one active operator and paused standbys.

Every replica gets a random priority, so exactly one (the highest) is active; the others pause
(kopf stops watching) until its peering record is gone: at once when it stops gracefully (it
removes its record), within `peering_lifetime_seconds` when it crashes. Without a peering name
the operator runs standalone (a single replica).
"""

from __future__ import annotations

import random

import kopf

from webordinary.operator.settings import OperatorSettings

PRIORITY_RANGE = (1, 32767)


def configure(kopf_settings: kopf.OperatorSettings, settings: OperatorSettings) -> None:
    if settings.peering_name is None:
        kopf_settings.peering.standalone = True
        return
    kopf_settings.peering.standalone = False
    kopf_settings.peering.name = settings.peering_name
    kopf_settings.peering.mandatory = True
    kopf_settings.peering.clusterwide = not settings.watch_namespaces()
    kopf_settings.peering.lifetime = settings.peering_lifetime_seconds
    if kopf_settings.peering.priority == 0:  # once per process: a priority never changes
        kopf_settings.peering.priority = random.SystemRandom().randint(*PRIORITY_RANGE)
