"""Domain objects to and from the JSON wire form, kept cheap for batches of 1,000.

Stored JSON bodies are embedded in responses as they are (`orjson.Fragment`), never
decoded and re-encoded; text bodies are JSON strings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from starlette.responses import Response

from conveyor.jobs import JobDetail, JobStatus
from conveyor.models import (
    Body,
    BodyKind,
    EntryResult,
    Message,
    MessageAttribute,
    MoveTask,
    PeekedMessage,
    Queue,
    QueueStats,
    SendResult,
)

_OPTIONS = orjson.OPT_NON_STR_KEYS


def json_response(data: Any, status: int = 200) -> Response:
    """A JSON response encoded with orjson (Fragments embedded as they are)."""
    return Response(orjson.dumps(data, option=_OPTIONS), status_code=status,
                    media_type="application/json")


# queues -----------------------------------------------------------------------------
def queue_json(queue: Queue, stats: QueueStats) -> dict[str, Any]:
    """A queue with its attributes and counts."""
    return {
        "name": queue.name,
        "region": queue.region,
        "attributes": queue.attributes.to_json(),
        "stats": stats.to_json(),
        "created_at": queue.created_at,
        "updated_at": queue.updated_at,
    }


# messages out -----------------------------------------------------------------------
def body_out(body: Body) -> Any:
    """The body as sent: stored JSON text embedded as is, text as a JSON string."""
    return orjson.Fragment(body.text) if body.kind is BodyKind.JSON else body.text


def _attributes_out(attributes: Mapping[str, MessageAttribute]) -> dict[str, Any]:
    return {name: a.to_json() for name, a in attributes.items()}


def sent_json(results: Sequence[SendResult]) -> dict[str, Any]:
    """The send response."""
    return {"messages": [{"id": r.id, "duplicate": r.duplicate} for r in results]}


def received_json(messages: Sequence[Message]) -> dict[str, Any]:
    """The receive response."""
    return {"messages": [{
        "id": m.id,
        "body": orjson.Fragment(m.body.text) if m.body.kind is BodyKind.JSON else m.body.text,
        "attributes": _attributes_out(m.attributes) if m.attributes else {},
        "receipt_handle": m.receipt_handle,
        "receive_count": m.receive_count,
        "sent_at": m.sent_at,
        "first_received_at": m.first_received_at,
        "lease_until": m.lease_until,
        "priority": m.priority,
        "group_id": m.group_id,
        "deduplication_id": m.deduplication_id,
        "last_error": m.last_error,
    } for m in messages]}


def peeked_json(messages: Sequence[PeekedMessage]) -> dict[str, Any]:
    """The peek response."""
    return {"messages": [{
        "id": m.id,
        "body": body_out(m.body),
        "attributes": _attributes_out(m.attributes),
        "receive_count": m.receive_count,
        "sent_at": m.sent_at,
        "visible_at": m.visible_at,
        "priority": m.priority,
        "group_id": m.group_id,
        "deduplication_id": m.deduplication_id,
        "last_error": m.last_error,
        "source_queue": m.source_queue,
    } for m in messages]}


def results_json(results: Sequence[EntryResult]) -> dict[str, Any]:
    """Per-entry outcomes of a delete or visibility batch."""
    return {"results": [entry_json(r) for r in results]}


def entry_json(result: EntryResult) -> dict[str, Any]:
    """One entry's outcome."""
    return {"receipt_handle": result.receipt_handle, "status": result.status,
            "message": result.message}


def task_json(task: MoveTask) -> dict[str, Any]:
    """A move task."""
    return task.to_json()


# jobs -------------------------------------------------------------------------------
def job_status_json(status: JobStatus) -> dict[str, Any]:
    """A job's recorded status."""
    return {"job_id": status.job_id, "status": status.status, "queue": status.queue,
            "task": status.task, "attempts": status.attempts, "error": status.error,
            "result": status.result, "keep_seconds": status.keep_seconds,
            "updated_at": status.updated_at, "progress": status.progress,
            "key": status.key, "created_at": status.created_at}


def job_detail_json(found: JobDetail) -> dict[str, Any]:
    """A job's page: its status, arguments, attempts and timeline."""
    return {**job_status_json(found.status), "args": found.status.args,
            "attempt_history": [
                {"attempt": a.attempt, "started_at": a.started_at, "worker": a.worker,
                 "ended_at": a.ended_at, "outcome": a.outcome, "error": a.error,
                 "traceback": a.traceback} for a in found.attempts],
            "timeline": [{"at": at, "event": event, "detail": detail}
                         for at, event, detail in found.timeline]}
