"""Message ids (time-ordered UUIDv7) and receipt handles."""

from __future__ import annotations

import os
import threading
import time
import uuid

from conveyor.errors import InvalidReceiptHandle

_lock = threading.Lock()
_last_ms = 0
_counter = 0


def new_message_ids(count: int, now_ms: int | None = None) -> list[str]:
    """`count` UUIDv7 strings, strictly increasing within this process (RFC 9562, method 1).

    Ids sort by creation time, so the primary key doubles as the retention index and
    consecutive sends keep their order in the btree.
    """
    global _last_ms, _counter
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    rand = os.urandom(8 * count)
    out: list[str] = []
    with _lock:
        if ms <= _last_ms:
            ms = _last_ms
        else:
            _counter = int.from_bytes(os.urandom(2), "big") & 0x3FF
        for i in range(count):
            _counter += 1
            if _counter > 0xFFF:  # 12-bit counter exhausted: borrow the next millisecond
                ms += 1
                _counter = 0
            tail = int.from_bytes(rand[8 * i: 8 * i + 8], "big") & 0x3FFF_FFFF_FFFF_FFFF
            value = (ms << 80) | (0x7 << 76) | (_counter << 64) | (0b10 << 62) | tail
            h = f"{value:032x}"
            out.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
        _last_ms = ms
    return out


def id_floor(ms: int) -> str:
    """The smallest UUIDv7 of a millisecond: every id made before `ms` sorts below it."""
    return str(uuid.UUID(int=(max(ms, 0) << 80) | (0x7 << 76) | (0b10 << 62)))


def decode_receipt_handle(handle: str) -> tuple[str, int]:
    """(message id, lease token), or InvalidReceiptHandle.

    A handle names one message under one lease: 32 hex digits of the id, then 16 of the
    token (`storage.rows` builds it); plain hex keeps both directions to a few string
    operations on the hot path.
    """
    # isascii + isalnum leave no spaces, so bytes.fromhex then admits exactly the hex
    # digits, in C (int(..., 16) would also take a "0x" prefix).
    if not isinstance(handle, str) or len(handle) != 48 or not (
            handle.isascii() and handle.isalnum()):
        raise InvalidReceiptHandle(f"The receipt handle {str(handle)[:80]!r} is not valid.")
    try:
        raw = bytes.fromhex(handle)
    except ValueError:
        raise InvalidReceiptHandle(
            f"The receipt handle {handle[:80]!r} is not valid.") from None
    h = handle.lower()  # ids are stored in lower case: both databases must agree
    return (f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}",
            int.from_bytes(raw[16:], "big", signed=True))
