"""Pydantic bases: camelCase on the wire, strict about what comes in."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class WireModel(BaseModel):
    """A model read from outside: unknown fields are an error, names are camelCase."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=False,
    )

    def to_wire(self) -> dict[str, object]:
        """The JSON-ready dict as other components expect it (camelCase, no Nones)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)
