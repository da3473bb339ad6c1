"""FIFO delivery rules, written once for every storage dialect.

A FIFO queue delivers each message group strictly in sequence order, and holds a group
back while any earlier message of it is invisible (in flight, or waiting out a retry):
a later message never overtakes an earlier one. Different groups go in parallel.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

SEQUENCE_DIGITS = 20


class FifoRow(NamedTuple):
    """A visible message of a FIFO queue, as the chooser sees it."""

    id: str
    group_id: str
    sequence: int
    receive_count: int


class FifoChoice(NamedTuple):
    """Which rows to lease now and which to dead-letter instead."""

    deliver: list[str]
    dead: list[str]


def choose(gates: Mapping[str, int], rows: Iterable[FifoRow], limit: int,
           max_receive_count: int) -> FifoChoice:
    """Pick up to `limit` deliverable rows from visible rows given in sequence order.

    `gates` maps a group to the smallest sequence among its invisible messages: rows of
    that group at or after it must wait. Rows already received `max_receive_count` times
    are dead-lettered and no longer hold their group back.
    """
    deliver: list[str] = []
    dead: list[str] = []
    for row in rows:
        if row.sequence >= gates.get(row.group_id, row.sequence + 1):
            continue
        if row.receive_count >= max_receive_count:
            dead.append(row.id)
            continue
        deliver.append(row.id)
        if len(deliver) >= limit:
            break
    return FifoChoice(deliver, dead)


def format_sequence(sequence: int | None) -> str | None:
    """SQS shows sequence numbers as long decimal strings."""
    return None if sequence is None else str(sequence).zfill(SEQUENCE_DIGITS)
