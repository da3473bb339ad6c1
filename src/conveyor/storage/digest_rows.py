"""Digest rows into `conveyor.digests` values, shared by both dialects."""

from __future__ import annotations

from typing import Any

import orjson

from conveyor.digests import Digest, DigestEvent, targets_from_json

__all__ = ["digest_from_row", "event_from_row"]


def digest_from_row(row: Any) -> Digest:
    """(id, recipient_id, digest_key, category, template, release_at, state, events,
    created_at, lease_until) -> Digest."""
    return Digest(row[0], row[1], row[2], row[3], row[4], int(row[5]), row[6], int(row[7]),
                  int(row[8]), int(row[9]))


def event_from_row(row: Any) -> DigestEvent:
    """(event_id, created_at, data, targets) -> DigestEvent."""
    return DigestEvent(row[0], int(row[1]), orjson.loads(row[2]), targets_from_json(row[3]))
