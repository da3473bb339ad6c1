"""Integers that clients spell in text: ASCII digits only, every length.

`str.isdigit` also says yes to digits `int()` refuses (`²`, `①`), `lstrip("+-")` lets
`--5` through, and `int()` refuses more than 4,300 digits: parsers that checked with the
first two and then called `int()` raised ValueError on such input, a 500 where a 400 was
due. Every integer read from a request, a header, a form or a flag goes through here."""

from __future__ import annotations

import re

__all__ = ["host_port", "integer"]

_SIGNED = re.compile(r"[+-]?[0-9]+")
_UNSIGNED = re.compile(r"[0-9]+")
_LONGEST = 100  # digits; a longer number reads as +-10**100, beyond every range checked
_HUGE = int("1" + "0" * _LONGEST)


def integer(text: str, *, signed: bool = False) -> int | None:
    """The integer `text` spells, white space around it ignored: ASCII digits, with
    `signed` after an optional + or -; else None."""
    text = text.strip()
    if (_SIGNED if signed else _UNSIGNED).fullmatch(text) is None:
        return None
    if len(text.lstrip("+-")) > _LONGEST:
        return -_HUGE if text.startswith("-") else _HUGE
    return int(text)


def host_port(text: str) -> tuple[str, int] | None:
    """`host:port` (a flag such as `--smtp` or `--listen`): the host and a port 0-65535,
    else None."""
    host, _, port_text = text.rpartition(":")
    port = integer(port_text)
    if not host or port is None or port > 65535:
        return None
    return host, port
