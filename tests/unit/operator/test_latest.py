"""The newest version of each environment the operator has seen (latest.Latest)."""

from __future__ import annotations

from typing import Any

from webordinary.operator.latest import Latest


def ee(rv: str, name: str = "env", ns: str = "tenants", **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns, "resourceVersion": rv},
            "status": status}


def test_an_older_version_never_replaces_a_newer_one() -> None:
    latest = Latest()
    latest.seen(ee("12", phase="Ready"))  # our status write's answer
    latest.seen(ee("9", phase="Starting"))  # a watch event still queued behind it
    assert (latest.get(("tenants", "env")) or {})["status"] == {"phase": "Ready"}
    latest.seen(ee("13", phase="Sleeping"))
    assert (latest.get(("tenants", "env")) or {})["status"] == {"phase": "Sleeping"}


def test_versions_that_are_not_numbers_keep_the_latest_arrival() -> None:
    latest = Latest()
    latest.seen(ee("b"))
    latest.seen(ee("a"))
    assert (latest.get(("tenants", "env")) or {})["metadata"]["resourceVersion"] == "a"


def test_environments_are_kept_apart_and_forgotten() -> None:
    latest = Latest()
    latest.seen(ee("5", name="one"))
    latest.seen(ee("6", name="one", ns="other"))
    latest.seen({})  # an empty answer holds no environment
    assert len(latest) == 2
    latest.forget(("tenants", "one"))
    assert latest.get(("tenants", "one")) is None
    assert latest.get(("other", "one")) is not None
