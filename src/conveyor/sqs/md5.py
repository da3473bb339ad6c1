"""MD5OfMessageBody and MD5OfMessageAttributes, byte for byte as AWS computes them.

The Java, JavaScript, Ruby, PHP and Go SDKs recompute these and reject a response whose
digests differ, so the encoding below must not drift.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping

from conveyor.models import MessageAttribute

_STRING, _BINARY = 1, 2


def md5_of_body(body: str) -> str:
    """Hex MD5 of the UTF-8 body."""
    return hashlib.md5(body.encode("utf-8", "surrogatepass"), usedforsecurity=False).hexdigest()


def _field(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def md5_of_attributes(attributes: Mapping[str, MessageAttribute]) -> str | None:
    """Hex MD5 of the attributes' canonical encoding; None when there are none.

    For each attribute sorted by name: length-prefixed name, length-prefixed data type,
    one transport byte (1 string/number, 2 binary), length-prefixed value.
    """
    if not attributes:
        return None
    digest = hashlib.md5(usedforsecurity=False)
    for name in sorted(attributes):
        attribute = attributes[name]
        digest.update(_field(name.encode()))
        digest.update(_field(attribute.type.encode()))
        value = attribute.value
        if isinstance(value, bytes):
            digest.update(bytes([_BINARY]) + _field(value))
        else:
            digest.update(bytes([_STRING]) + _field(value.encode("utf-8", "surrogatepass")))
    return digest.hexdigest()
