"""FIFO delivery rules, written once for every storage dialect.

A FIFO queue delivers each message group strictly in sequence order, and holds a group
back while any earlier message of it is invisible (in flight, or waiting out a retry):
a later message never overtakes an earlier one. Different groups go in parallel.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

SEQUENCE_DIGITS = 20
PAGE = 1000
"""Visible rows a FIFO receive reads per round trip."""


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
    are dead-lettered and no longer hold their group back. The batch is filled group by
    group, as SQS fills it ("as many messages with the same message group ID as
    possible", so that other consumers get the other groups): every deliverable row of
    the group whose first row comes first, in sequence order, then the next group's.
    """
    paging = Paging(gates, limit, max_receive_count)
    paging.take(rows)
    return FifoChoice(paging.deliver, paging.dead)


class Paging:
    """The paging loop of a FIFO receive, written once for every dialect.

    A dialect reads the queue's visible rows (id, group_id, sequence, receive_count, ...)
    in sequence order, `PAGE` at a time after the sequence `after`, and hands each page to
    `add` until `after` is None; then `deliver` and `dead` say what to lease and what to
    dead-letter (`choose`'s rules over all the pages read)::

        paging = Paging(gates, limit, max_receive_count)
        while paging.after is not None:
            paging.add(read_page(after=paging.after, limit=PAGE))
    """

    def __init__(self, gates: Mapping[str, int], limit: int, max_receive_count: int
                 ) -> None:
        self.gates = gates
        self.limit = limit
        self.max_receive_count = max_receive_count
        self.dead: list[Any] = []
        self.after: int | None = 0
        self._groups: dict[str, list[Any]] = {}  # in the order of their first row
        self._found = 0

    @property
    def deliver(self) -> list[Any]:
        """The ids to lease, group by group (see `choose`)."""
        return [i for ids in self._groups.values() for i in ids][:self.limit]

    def take(self, rows: Iterable[FifoRow]) -> None:
        """Sort rows (in sequence order) into deliverable, waiting and dead ones."""
        for row in rows:
            if row.sequence >= self.gates.get(row.group_id, row.sequence + 1):
                continue
            if row.receive_count >= self.max_receive_count:
                self.dead.append(row.id)
                continue
            self._groups.setdefault(row.group_id, []).append(row.id)
            self._found += 1

    def add(self, page: Sequence[Any]) -> None:
        """Choose among one page's rows; `after` moves on, or becomes None when done. A
        whole page is read even once `limit` rows are found: a later row of the first
        group goes before the next group's."""
        self.take(FifoRow(r[0], r[1], r[2], r[3]) for r in page)
        done = len(page) < PAGE or self._found >= self.limit
        self.after = None if done else page[-1][2]


def format_sequence(sequence: int | None) -> str | None:
    """SQS shows sequence numbers as long decimal strings."""
    return None if sequence is None else str(sequence).zfill(SEQUENCE_DIGITS)
