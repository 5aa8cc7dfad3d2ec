"""Canonical resource quantities, as the API server stores them."""

from __future__ import annotations

import pytest

from webordinary.devkit.kube.quantity import canonical


@pytest.mark.parametrize(("given", "stored"), [
    (1, "1"), ("1000m", "1"), ("0.5", "500m"), (0.5, "500m"), ("2000", "2k"),
    ("1500", "1500"), ("1.5", "1500m"), ("250m", "250m"), ("1.5Gi", "1536Mi"),
    ("1024Mi", "1Gi"), ("2048Ki", "2Mi"), ("5Gi", "5Gi"), ("0.5Ki", "512"), ("1e3", "1e3"),
    ("0", "0"), ("100Mi", "100Mi"),
])
def test_canonical_quantities(given: str | float, stored: str) -> None:
    assert canonical(given) == stored


@pytest.mark.parametrize("bad", ["lots", "1Gb", "", "1.2.3", "Mi"])
def test_not_a_quantity(bad: str) -> None:
    with pytest.raises(ValueError, match="quantities"):
        canonical(bad)


def test_canonical_forms_are_kept_apart_by_type() -> None:
    """Canonical forms are remembered per value and type (10**20 == 1e20 in Python, but the
    float is written in exponent form), and an invalid quantity raises every time."""
    assert canonical(10**20) == "100E"
    assert canonical(1e20) == "100e18"
    assert canonical(10**20) == "100E"
    assert canonical(0.5) == "500m"
    assert canonical("1e-3") == "1e-3"
    assert canonical(1e-3) == "1m"
    for _ in range(2):
        with pytest.raises(ValueError, match="regular expression"):
            canonical("1.5.5")
