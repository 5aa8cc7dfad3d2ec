"""Where editor pods run: the chart's placement values as pod spec fields (priorityClassName,
topology spread; nodeSelector and tolerations come with the sandbox settings, pod.sandbox),
and the workspace's access mode."""

from __future__ import annotations

from typing import Any

from webordinary.operator.settings import OperatorSettings


def pod_fields(settings: OperatorSettings, selector: dict[str, str]) -> dict[str, Any]:
    """Pod spec fields for placement; empty values are left out (as the API server would).

    A topology spread constraint without a labelSelector spreads editors by `selector`
    (the editors' common labels), which is what an SRE means by "spread the editors".
    """
    fields: dict[str, Any] = {}
    if settings.editor_priority_class_name:
        fields["priorityClassName"] = settings.editor_priority_class_name
    if settings.editor_topology_spread_constraints:
        fields["topologySpreadConstraints"] = [
            {"labelSelector": {"matchLabels": dict(selector)}, **constraint}
            for constraint in settings.editor_topology_spread_constraints
        ]
    return fields


def access_modes(settings: OperatorSettings) -> list[str]:
    return [settings.workspace_access_mode]
