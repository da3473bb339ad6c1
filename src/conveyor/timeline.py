"""The delivery view's values: a notification's events as stored, its timeline as shown,
and counts per channel and status over time.

Pure data and the one reading of the stored events (`timeline`): the storage triggers of
migration 0020 only copy ledger changes into events (see that file for what each row
means; since 0025 the storage reads the made and current states from the ledger row and
keeps only the rest as rows, and answers the same events); what they say is decided here,
once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

from conveyor.ledger import Delivery

__all__ = ["SERIES_STEP_MS", "DeliveryEvent", "Series", "SeriesCount", "TimelineEntry",
           "series_of", "shown_state", "timeline"]

SERIES_STEP_MS = 10_000
"""The width of the stored buckets of counts (a series' bucket is a multiple of it)."""

IN_DOUBT = ("handed to the provider, but the answer was never recorded (the worker "
            "stopped), so it was sent again")


@dataclass(frozen=True, slots=True)
class DeliveryEvent:
    """One stored event of a notification (times in ms since the epoch): attempt 0 is the
    status it was made with; a `sending` event is an attempt left in doubt; any other
    status is the outcome of `attempt`, handed to the provider at `started_at`."""

    attempt: int
    status: str
    at: int
    started_at: int | None = None
    detail: str | None = None
    provider_id: str | None = None


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One line of a notification's timeline: its state from `at` on (`suppressed` when
    a suppressed address failed or was skipped), the attempt, and the provider's answer
    or the reason."""

    state: str
    at: int
    attempt: int
    detail: str | None = None
    provider_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The API's form."""
        return {"state": self.state, "at": self.at, "attempt": self.attempt,
                "detail": self.detail, "provider_id": self.provider_id}


def shown_state(status: str, detail: str | None) -> str:
    """The state a timeline shows for a status: `suppressed` for a failed or skipped one
    whose reason is the suppression list, else the status."""
    if status in ("failed", "skipped") and detail == "suppressed":
        return "suppressed"
    return status


def timeline(row: Delivery, events: Sequence[DeliveryEvent]) -> list[TimelineEntry]:
    """A notification's timeline, oldest first: its events, each attempt's hand-over to the
    provider, and the row's current state when no event stands for it yet (a row never
    changed since it was made, or an attempt on the wire now)."""
    keyed: list[tuple[int, int, int, TimelineEntry]] = []
    # A worker records every unsent answer `retrying` at once and the final word after
    # (dead letter written): an attempt that ended `failed` shows that only.
    # Its hand-over time is the provisional record's.
    settled = {e.attempt for e in events if e.status not in ("retrying", "sending")}
    handed = {e.attempt: e.started_at for e in events if e.status == "retrying"}
    for e in events:
        if e.status == "retrying" and e.attempt in settled:
            continue
        if e.started_at is None and e.attempt in handed:
            e = replace(e, started_at=handed[e.attempt])
        if e.status == "sending":
            keyed.append((e.at, e.attempt, 1, TimelineEntry("sending", e.at, e.attempt,
                                                            IN_DOUBT)))
            continue
        if e.started_at is not None:
            keyed.append((e.started_at, e.attempt, 1,
                          TimelineEntry("sending", e.started_at, e.attempt)))
        keyed.append((e.at, e.attempt, 0 if _made(e) else 2, TimelineEntry(
            shown_state(e.status, e.detail), e.at, e.attempt, e.detail, e.provider_id)))
    if row.status == "sending":
        keyed.append((row.updated_at, row.attempts, 1, TimelineEntry(
            "sending", row.updated_at, row.attempts, "handed to the provider; no answer "
            "recorded yet")))
    elif not events:
        keyed.append((row.updated_at, row.attempts, 0, TimelineEntry(
            shown_state(row.status, row.error), row.updated_at, row.attempts, row.error,
            row.provider_id if row.status == "sent" else None)))
    keyed.sort(key=lambda k: k[:3])
    return [k[3] for k in keyed]


def _made(e: DeliveryEvent) -> bool:
    """Whether an event is the state a notification was made in (first at its time)."""
    return e.attempt == 0 and e.status in ("queued", "held")


class SeriesCount(NamedTuple):
    """How many notifications of a channel entered a status in the stored bucket that
    starts at `bucket` (ms)."""

    bucket: int
    channel: str
    status: str
    n: int


@dataclass(frozen=True, slots=True)
class Series:
    """Counts per channel and status over time: `at` holds each bucket's start (ms),
    `counts[channel][status]` one count per bucket, `totals` the sums."""

    bucket_seconds: int
    since: int
    until: int
    at: list[int]
    counts: dict[str, dict[str, list[int]]] = field(default_factory=dict)

    @property
    def totals(self) -> dict[str, dict[str, int]]:
        """The sums over the whole window, by channel and status."""
        return {ch: {s: sum(v) for s, v in by.items()} for ch, by in self.counts.items()}

    def to_json(self) -> dict[str, Any]:
        """The API's form."""
        return {"bucket": self.bucket_seconds, "since": self.since, "until": self.until,
                "at": self.at, "counts": self.counts, "totals": self.totals}


def series_of(rows: Sequence[SeriesCount], bucket_seconds: int, since: int, until: int,
              order: Mapping[str, int] | None = None) -> Series:
    """Stored counts regrouped into buckets of `bucket_seconds` (aligned to the epoch)
    from the one holding `since` up to `until`, every bucket listed (zeros too)."""
    width = bucket_seconds * 1000
    first = since // width * width
    at = list(range(first, until, width)) or [first]
    counts: dict[str, dict[str, list[int]]] = {}
    for r in rows:
        index = (r.bucket // width * width - first) // width
        if 0 <= index < len(at):
            by = counts.setdefault(r.channel, {})
            by.setdefault(r.status, [0] * len(at))[index] += r.n
    rank = order or {}
    ordered = {ch: dict(sorted(by.items(), key=lambda kv: (rank.get(kv[0], 99), kv[0])))
               for ch, by in sorted(counts.items())}
    return Series(bucket_seconds, first, until, at, ordered)
