"""Lists in settings read from environment variables: one comma-separated variable each.

A list field takes `Annotated[list[str], NoDecode, COMMA_SEPARATED]` (pydantic-settings'
`NoDecode` turns off its own JSON decoding of the variable)."""

from __future__ import annotations

from typing import Final

from pydantic import BeforeValidator


def split_commas(value: object) -> object:
    """`" a, b,,"` -> `["a", "b"]` (an empty variable is an empty list); a list given in code
    passes through for pydantic to check."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


COMMA_SEPARATED: Final = BeforeValidator(split_commas)
