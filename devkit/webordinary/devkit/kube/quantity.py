"""Resource quantities the way the API server stores them (canonical form).

A real server turns `cpu: 1` into "1", "1000m" into "1", "0.5" into "500m", "2000" into
"2k", "1.5Gi" into "1536Mi", "1024Mi" into "1Gi". Code that compares desired and live
resources must cope with that; here it has to, too.
"""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from functools import lru_cache

_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_SUFFIX_OF = {exp: suffix for suffix, exp in _DECIMAL.items()}
_BINARY_OF = {bits: suffix for suffix, bits in _BINARY.items()}
_PATTERN = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?\d+|[numkMGTPE])?$")


def canonical(value: str | int | float) -> str:
    """The canonical string of a quantity; ValueError when it is not one."""
    return _canonical(value)


# A function of the value and its type alone (`typed`: 1 and 1.0 are apart): the few distinct
# quantities of many objects are worked out once (the Decimal arithmetic was ~3 % of the
# emulator's CPU in a creation burst). Invalid ones raise and are not kept.
@lru_cache(maxsize=4096, typed=True)
def _canonical(value: str | int | float) -> str:
    text = str(value).strip() if not isinstance(value, float) else repr(value)
    match = _PATTERN.match(text)
    if not match:
        raise ValueError(f"quantities must match the regular expression: {text!r}")
    number_text, suffix = match.group(1), match.group(2) or ""
    try:
        number = Decimal(number_text)
    except InvalidOperation as exc:
        raise ValueError(text) from exc
    if suffix in _BINARY:
        amount = number * (Decimal(2) ** _BINARY[suffix])
        if amount == amount.to_integral_value() and abs(amount) >= 1024:
            return _binary(int(amount))
        return _decimal(amount, exponent_form=False)
    if suffix[:1] in ("e", "E"):
        return _decimal(number * (Decimal(10) ** int(suffix[1:])), exponent_form=True)
    return _decimal(number * (Decimal(10) ** _DECIMAL[suffix]), exponent_form=False)


def _binary(amount: int) -> str:
    bits = 60
    while bits > 0:
        if amount % (1 << bits) == 0:
            return f"{amount >> bits}{_BINARY_OF[bits]}"
        bits -= 10
    return str(amount)


def _decimal(amount: Decimal, *, exponent_form: bool) -> str:
    if amount == 0:
        return "0"
    nanos = (amount * Decimal(10) ** 9).to_integral_value(rounding=ROUND_CEILING)
    exponent = -9
    while nanos % 1000 == 0 and exponent < 18:
        nanos //= 1000
        exponent += 3
    mantissa = int(nanos)
    if exponent_form:
        return f"{mantissa}e{exponent}" if exponent else str(mantissa)
    return f"{mantissa}{_SUFFIX_OF[exponent]}"
