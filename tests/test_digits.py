"""conveyor.digits: integers that clients spell in text."""

from __future__ import annotations

import pytest

from conveyor.digits import host_port, integer


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


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:25", ("127.0.0.1", 25)), ("localhost:0", ("localhost", 0)),
    ("[::1]:65535", ("[::1]", 65535)), ("mail:65536", None), (":25", None),
    ("mail", None), ("mail:", None), ("mail:\u00b2", None), ("mail:-1", None),
])
def test_host_port(text: str, expected: tuple[str, int] | None) -> None:
    assert host_port(text) == expected


def test_flags_refuse_a_port_past_65535() -> None:
    from conveyor.errors import InvalidInput
    from conveyor.notify.settings import ChannelSettings

    with pytest.raises(InvalidInput, match="--smtp must be host:port"):
        ChannelSettings(smtp="mail:65536").channels()
