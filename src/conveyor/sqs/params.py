"""Typed reads of request members, the same for both protocols.

JSON requests carry numbers as numbers; query requests carry every value as a string.
Both arrive here as one dict shaped like the JSON request, so the getters accept either.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conveyor.digits import integer
from conveyor.sqs.errors import invalid, missing
from conveyor.sqs.texts import fail

# Members whose characters are checked by a rule of their own (a body with a NUL is
# InvalidMessageContents, as on AWS), not by the generic NUL refusal below.
_OWN_CHARACTER_RULES = frozenset({"MessageBody"})


def _nul(name: str) -> Exception:
    # No storage keeps a NUL in text (PostgreSQL refuses it): bad input, not a 500.
    return invalid(f"Value for parameter {name} must not contain a NUL character.")


class Params:
    """The members of one request, with getters that raise AWS errors."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data

    def __contains__(self, name: str) -> bool:
        return self.data.get(name) is not None

    def raw(self, name: str) -> Any:
        """The member as sent, or None."""
        return self.data.get(name)

    def text(self, name: str, *, required: bool = False) -> str | None:
        """A string member."""
        value = self.data.get(name)
        if value is None:
            if required:
                raise missing(name)
            return None
        if not isinstance(value, str):
            raise invalid(f"Value for parameter {name} must be a string.")
        if "\x00" in value and name not in _OWN_CHARACTER_RULES:
            raise _nul(name)
        return value

    def required(self, name: str) -> str:
        """A string member that must be present."""
        value = self.text(name, required=True)
        assert value is not None
        return value

    def integer(self, name: str, low: int, high: int, key: str | None = None) -> int | None:
        """An integer member within [low, high], or None when absent; out of range is the
        error of row `key` of `conveyor.sqs.texts.TEXTS` (with the value)."""
        value = self.data.get(name)
        if value is None:
            return None
        if isinstance(value, str) and (number := integer(value, signed=True)) is not None:
            value = number
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail("not_an_integer", name=name, value=str(value)[:100])
        if not low <= value <= high:
            if key is not None:
                raise fail(key, value=value, name=name)
            raise invalid(f"Value {value} for parameter {name} is invalid. Reason: must be "
                          f"between {low} and {high}.")
        return value

    def strings(self, name: str) -> list[str]:
        """A list of strings (empty when absent)."""
        value = self.data.get(name)
        if value is None:
            return []
        if isinstance(value, str):
            return [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise invalid(f"Value for parameter {name} must be a list of strings.")
        if any("\x00" in v for v in value):
            raise _nul(name)
        return value

    def string_map(self, name: str) -> dict[str, str]:
        """A map of strings to strings (empty when absent)."""
        value = self.data.get(name)
        if value is None:
            return {}
        if not isinstance(value, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise invalid(f"Value for parameter {name} must be a map of strings.")
        if any("\x00" in k or "\x00" in v for k, v in value.items()):
            raise _nul(name)
        return dict(value)

    def map(self, name: str) -> dict[str, Any]:
        """A map whose values are structures (empty when absent)."""
        value = self.data.get(name)
        if value is None:
            return {}
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise invalid(f"Value for parameter {name} must be a map.")
        return dict(value)

    def entries(self, name: str = "Entries") -> list[Params]:
        """A list of structures, each wrapped in Params."""
        value = self.data.get(name)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
            raise invalid(f"Value for parameter {name} must be a list of structures.")
        return [Params(v) for v in value]
