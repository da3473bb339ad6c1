"""Digests as values: the `digest` of a notification (a key and a window), its one parser,
and the rows `broker.digests` returns. Pure data, like `conveyor.recipients`.

A notification to a recipient carrying `{"key": "comments", "window": "10m"}` is not sent
at once: it joins the recipient's open digest for that key (opening one that ends a window
later when none is open), and when the window ends one message per address goes out whose
template gets `events` (each merged notification's data, oldest first) and `count`. As in
Novu's digest step (amount + unit, a digest key per subscriber) and Knock's batch function
(a batch key, a window, the batched `activities`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from conveyor.errors import InvalidDigest

__all__ = ["MAX_WINDOW", "MIN_WINDOW", "Digest", "DigestEvent", "DigestSpec", "DigestTarget",
           "parse_digest", "parse_window", "targets_from_json",
           "targets_json"]

MIN_WINDOW = 1
MAX_WINDOW = 7 * 86_400
"""A window is 1 second to 7 days."""
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
_WINDOW = re.compile(r"([0-9]{1,7})([smhd])")
_KEY = re.compile(r"[A-Za-z0-9_.:@+/-]{1,200}")


@dataclass(frozen=True, slots=True)
class DigestSpec:
    """Merge notifications with this `key` (per recipient) for `window` seconds."""

    key: str
    window: int

    def to_json(self) -> dict[str, Any]:
        """`{"key": ..., "window": seconds}`."""
        return {"key": self.key, "window": self.window}


def parse_window(value: Any) -> int:
    """Seconds from `"30s"`, `"10m"`, `"2h"`, `"1d"` or a whole number of seconds; raises
    `InvalidDigest` outside 1 s to 7 days."""
    seconds: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str) and (match := _WINDOW.fullmatch(value.strip())):
        seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds is None:
        raise InvalidDigest(f"digest.window must be a duration such as 30s, 10m, 2h or 1d "
                            f"(or whole seconds), not {value!r:.40}.", field="digest.window")
    if not MIN_WINDOW <= seconds <= MAX_WINDOW:
        raise InvalidDigest(f"digest.window must be between 1 second and 7 days, not "
                            f"{seconds} seconds.", field="digest.window")
    return seconds


def parse_digest(value: Any) -> DigestSpec | None:
    """A `DigestSpec` from `{"key": ..., "window": ...}` (or a `DigestSpec`; None: none)."""
    if value is None or isinstance(value, DigestSpec):
        if isinstance(value, DigestSpec):
            parse_digest(value.to_json())
        return value
    if not isinstance(value, Mapping) or set(value) != {"key", "window"}:
        raise InvalidDigest('digest must be {"key": "...", "window": "10m"}.', field="digest")
    key = value["key"]
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise InvalidDigest("digest.key must be 1 to 200 of A-Z a-z 0-9 _ . : @ + / -.",
                            field="digest.key")
    return DigestSpec(key, parse_window(value["window"]))


@dataclass(frozen=True, slots=True)
class DigestTarget:
    """One address an event goes to: its channel, the address (a string, or a Web Push
    subscription object) and its key (`conveyor.recipients.address_key`)."""

    channel: str
    address: Any
    key: str


@dataclass(frozen=True, slots=True)
class DigestEvent:
    """One merged notification: its id, when it came (ms), its data, its addresses."""

    event_id: str
    created_at: int
    data: Mapping[str, Any]
    targets: Sequence[DigestTarget]


@dataclass(frozen=True, slots=True)
class Digest:
    """A recipient's digest for a key: `open` (collecting until `release_at`, ms),
    `closing` (being released, `lease_until`) or `done`."""

    id: str
    recipient_id: str
    key: str
    category: str
    template: str
    release_at: int
    state: str
    events: int
    created_at: int
    lease_until: int = 0


def targets_json(targets: Sequence[DigestTarget]) -> str:
    """The stored form of an event's targets: `[[channel, address, key], ...]`."""
    return orjson.dumps([[t.channel, t.address, t.key] for t in targets]).decode()


def targets_from_json(text: str | bytes) -> tuple[DigestTarget, ...]:
    """`targets_json`, read back."""
    return tuple(DigestTarget(t[0], t[1], t[2]) for t in orjson.loads(text))
