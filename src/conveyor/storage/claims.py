"""Unique and debounce claims of a send batch (`conveyor.models.Claim`), written once for
every dialect.

A claim row maps a key to the message holding it until `expires_at`. Inside the send's
transaction each dialect runs three thin statements, driven by these functions:

- unique keys (the first message of each key in the batch) are *taken*: won unless a live
  row holds the key; for the keys lost, the holders' ids are read;
- debounce keys (the last message of each key in the batch) first try to *replace* the
  held message (still delayed, never received): its body, attributes, priority and due
  time become the new message's; then the key is *put*, pointing at the replaced message
  or the new one, with a new expiry.

`resolve` then says which messages to insert and what every position returns, in the
shape of `conveyor.storage.dedup` (None where a row is inserted).
"""

from __future__ import annotations

from dataclasses import dataclass

from conveyor.models import SendResult
from conveyor.storage.params import NewMessages


@dataclass(frozen=True, slots=True)
class ClaimPlan:
    """What to ask the claims table: unique keys -> index of their first message,
    debounce keys -> index of their last message."""

    unique: dict[str, int]
    debounce: dict[str, int]


def plan(batch: NewMessages) -> ClaimPlan:
    """The keys of a batch, by kind."""
    unique: dict[str, int] = {}
    debounce: dict[str, int] = {}
    for i, claim in enumerate(batch.claims or ()):
        if claim is None:
            continue
        if claim.replace:
            debounce[claim.key] = i
        else:
            unique.setdefault(claim.key, i)
    return ClaimPlan(unique, debounce)


def resolve(batch: NewMessages, p: ClaimPlan, won: set[str], holders: dict[str, str],
            replaced: dict[str, str]) -> tuple[list[SendResult | None], list[int]]:
    """Results in batch order (None where a row is inserted) and the positions to insert.

    `won`: unique keys taken; `holders`: the holder's id of each unique key lost;
    `replaced`: the id of the message each debounce key replaced."""
    results: list[SendResult | None] = []
    keep: list[int] = []
    for i, claim in enumerate(batch.claims or [None] * len(batch)):
        if claim is None:
            results.append(None)
            keep.append(i)
        elif claim.replace:
            key = claim.key
            if key in replaced:
                results.append(SendResult(replaced[key], duplicate=True))
            elif p.debounce[key] == i:
                results.append(None)
                keep.append(i)
            else:  # an earlier send of the key in this batch: the last one wins
                results.append(SendResult(batch.ids[p.debounce[key]], duplicate=True))
        elif claim.key in won:
            first = p.unique[claim.key]
            if first == i:
                results.append(None)
                keep.append(i)
            else:
                results.append(SendResult(batch.ids[first], duplicate=True))
        else:
            results.append(SendResult(holders[claim.key], duplicate=True))
    return results, keep


def lifetime_ms(batch: NewMessages, index: int) -> int:
    """How long from now the claim of message `index` holds: its `seconds`, and never less
    than the message's delay (a debounced message stays replaceable while it waits)."""
    claim = batch.claims[index] if batch.claims else None
    assert claim is not None
    return max(claim.seconds * 1000, batch.delays_ms[index])


def merge(outer: list[SendResult | None], inner: list[SendResult | None]
          ) -> list[SendResult | None]:
    """Put the claims step's results (for the rows deduplication kept) into the places
    deduplication left open; None stays where a row is still to be inserted."""
    it = iter(inner)
    return [r if r is not None else next(it) for r in outer]
