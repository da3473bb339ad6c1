"""conveyor.digits: integers that clients spell in text."""

from __future__ import annotations

import pytest

from conveyor.digits import integer


@pytest.mark.parametrize(("text", "signed", "expected"), [
    ("0", False, 0), (" 42\n", False, 42), ("007", False, 7), ("-5", True, -5),
    ("+5", True, 5), ("-5", False, None), ("", False, None), (" ", True, None),
    ("\u00b2", False, None), ("\u2460", False, None), ("\u0663", False, None),
    ("--5", True, None), ("+-5", True, None), ("1_000", False, None), ("1e3", False, None),
    ("5 5", False, None), ("0x10", False, None),
    ("9" * 5000, False, 10 ** 100), ("-" + "9" * 5000, True, -(10 ** 100)),
    ("9" * 100, False, int("9" * 100)),
])
def test_integer(text: str, signed: bool, expected: int | None) -> None:
    assert integer(text, signed=signed) == expected
