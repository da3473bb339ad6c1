"""Deduplication of a send batch, written once for every dialect.

Each dialect claims the batch's keys in the dedup table (a key is won unless a live entry
holds it) and reads the ids behind the keys it lost; these functions do the rest.
"""

from __future__ import annotations

from conveyor.models import SendResult
from conveyor.storage.base import NewMessages


def first_ids(batch: NewMessages) -> dict[str, str]:
    """Each deduplication key of the batch -> the id of its first message in the batch."""
    first: dict[str, str] = {}
    for message_id, key in zip(batch.ids, batch.dedup_keys):
        if key is not None:
            first.setdefault(key, message_id)
    return first


def resolve(batch: NewMessages, first: dict[str, str], won: set[str],
            earlier: dict[str, str]) -> tuple[list[SendResult | None], list[int]]:
    """Results in batch order (None where a row is inserted: the caller fills in its
    result) and the positions to insert."""
    results: list[SendResult | None] = []
    keep: list[int] = []
    for i, (message_id, key) in enumerate(zip(batch.ids, batch.dedup_keys)):
        if key is None or (key in won and first[key] == message_id):
            results.append(None)
            keep.append(i)
        elif key in won:
            results.append(SendResult(first[key], duplicate=True))
        else:
            results.append(SendResult(earlier[key], duplicate=True))
    return results, keep


def fill(results: list[SendResult | None], inserted: list[SendResult]) -> list[SendResult]:
    """Put the inserted rows' results into the places `resolve` left open."""
    it = iter(inserted)
    return [r if r is not None else next(it) for r in results]
