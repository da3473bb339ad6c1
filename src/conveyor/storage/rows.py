"""Turning database rows into models, shared by every dialect."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

import orjson

from conveyor.fifo import format_sequence
from conveyor.heartbeats import WorkerInfo, counts_of, schedule_of
from conveyor.jobs import JobAttempt, JobStatus
from conveyor.ledger import Delivery
from conveyor.models import (
    Body,
    BodyKind,
    Message,
    MessageAttribute,
    MoveTask,
    PeekedMessage,
    Queue,
    QueueAttributes,
    QueueStats,
    decode_attributes,
    dumps_json,
)
from conveyor.recipients import Recipient, parse_recipient, recipient_json

_KINDS = (BodyKind.TEXT, BodyKind.JSON)
_NO_ATTRIBUTES: dict[str, MessageAttribute] = {}


class Row(Protocol):
    """A database row: a tuple from sqlite3, a Record from asyncpg."""

    def __getitem__(self, index: int, /) -> Any: ...


def queue_from_row(row: Row) -> Queue:
    """(id, region, name, attributes, created_at, updated_at) -> Queue."""
    return Queue(id=row[0], region=row[1], name=row[2],
                 attributes=QueueAttributes.from_json(orjson.loads(row[3])),
                 created_at=row[4], updated_at=row[5])


def message_from_claim(queue_name: str, message_id: str, row: Row) -> Message:
    """A claimed row: (id, token, receive_count, sent_at, first_received_at, visible_at,
    body_kind, body, attributes, priority, group_id, dedup_id, last_error, sequence, ...)."""
    attributes = row[8]
    return Message(
        message_id, queue_name, Body(row[7], _KINDS[row[6]]),
        decode_attributes(attributes) if attributes else _NO_ATTRIBUTES,
        message_id.replace("-", "") + format(row[1] & 0xFFFF_FFFF_FFFF_FFFF, "016x"),
        row[2], row[3], row[4], row[5], row[9], row[10], row[11], row[12],
        format_sequence(row[13]))


def peeked_from_row(message_id: str, row: Row,
                    queue_names: dict[int, str]) -> PeekedMessage:
    """(id, body_kind, body, attributes, receive_count, sent_at, visible_at, priority,
    group_id, dedup_id, last_error, source_queue_id) -> PeekedMessage."""
    return PeekedMessage(
        id=message_id, body=Body(row[2], _KINDS[row[1]]), attributes=decode_attributes(row[3]),
        receive_count=row[4], sent_at=row[5], visible_at=row[6], priority=row[7],
        group_id=row[8], deduplication_id=row[9], last_error=row[10],
        source_queue=queue_names.get(row[11]) if row[11] is not None else None)


def stats_from_row(row: Row, dead_letters: int, now: int) -> QueueStats:
    """(visible, in_flight, delayed, min_sent_at) -> QueueStats."""
    oldest = row[3]
    return QueueStats(visible=int(row[0] or 0), in_flight=int(row[1] or 0),
                      delayed=int(row[2] or 0),
                      oldest_age_seconds=None if oldest is None else max(0, now - oldest) / 1000,
                      dead_letters=dead_letters)


def task_to_json(task: MoveTask) -> str:
    """Stored form of a move task."""
    return dumps_json(task.to_json())


def task_from_json(text: str) -> MoveTask:
    """Inverse of `task_to_json`."""
    return MoveTask(**orjson.loads(text))


def job_status_from_row(row: Row) -> JobStatus:
    """(id, status, queue, task, attempts, error, result, keep_seconds, updated_at,
    report, created_at, key, args)."""
    result, report, created, args = row[6], row[9], row[10], row[12]
    return JobStatus(row[0], row[1], row[2], row[3], int(row[4]), row[5],
                     None if result is None else orjson.loads(result), int(row[7]),
                     int(row[8]), None if report is None else orjson.loads(report),
                     key=row[11], args=None if args is None else orjson.loads(args),
                     created_at=None if created is None else int(created))


def job_attempt_from_row(row: Row) -> JobAttempt:
    """(attempt, started_at, worker, ended_at, outcome, error, traceback)."""
    return JobAttempt(int(row[0]), int(row[1]), row[2],
                      None if row[3] is None else int(row[3]), row[4], row[5], row[6])


def delivery_from_row(row: Row) -> Delivery:
    """(id, channel, recipient, status, attempts, error, provider_id, updated_at,
    expires_at, resends) -> Delivery."""
    return Delivery(row[0], row[1], row[2], row[3], int(row[4]), row[5], row[6],
                    int(row[7]), int(row[8]), int(row[9]))


def counts_by_channel(found: Iterable[Row]) -> dict[str, dict[str, int]]:
    """(channel, status, count) rows -> {channel: {status: count}}."""
    counts: dict[str, dict[str, int]] = {}
    for row in found:
        counts.setdefault(str(row[0]), {})[str(row[1])] = int(row[2])
    return counts


def worker_from_row(row: Row) -> WorkerInfo:
    """(id, host, pid, queues, concurrency, running, detail, started_at, beat_at,
    expires_at) -> WorkerInfo; `detail` holds the schedules, counts and TTL."""
    detail = orjson.loads(row[6])
    return WorkerInfo(
        worker_id=row[0], host=row[1], pid=int(row[2]), queues=tuple(orjson.loads(row[3])),
        concurrency=int(row[4]), running=int(row[5]),
        ttl_seconds=float(detail.get("ttl_seconds", 0)),
        schedules=tuple(schedule_of(s) for s in detail.get("schedules", ())),
        counts=tuple(counts_of(c) for c in detail.get("counts", ())),
        started_at=int(row[7]), beat_at=int(row[8]), expires_at=int(row[9]))


def tally_by_task(found: Iterable[Row]) -> dict[tuple[str, str, str], int]:
    """(queue, task, status, count) rows -> {(queue, task, status): count}."""
    out: dict[tuple[str, str, str], int] = {}
    for r in found:
        key = (str(r[0]), str(r[1]), str(r[2]))
        out[key] = out.get(key, 0) + int(r[3])
    return out


def recipient_columns(r: Recipient) -> tuple[str, str, str, str, str, str | None]:
    """(id, timezone, locale, addresses, preferences, quiet_hours) as stored (JSON text)."""
    doc = recipient_json(r)
    quiet = doc["quiet_hours"]
    return (r.id, r.timezone, r.locale, orjson.dumps(doc["addresses"]).decode(),
            orjson.dumps(doc["preferences"]).decode(),
            None if quiet is None else orjson.dumps(quiet).decode())


def recipient_from_row(row: Row) -> Recipient:
    """(id, timezone, locale, addresses, preferences, quiet_hours, updated_at) -> Recipient,
    through the one parser (a row written by a newer node is checked like any input, but
    for the addresses' shapes, which a row written before they were asked need not
    have)."""
    doc = {"timezone": row[1], "locale": row[2], "addresses": orjson.loads(row[3]),
           "preferences": orjson.loads(row[4]),
           "quiet_hours": None if row[5] is None else orjson.loads(row[5])}
    return parse_recipient(row[0], doc, int(row[6]), stored=True)
