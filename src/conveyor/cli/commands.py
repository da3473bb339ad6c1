"""Client commands: each turns parsed arguments into one or two `conveyor.client.Client`
calls and prints the answer.

Data goes to stdout (JSON lines in the server's own wire form, or a table for people); notes
go to stderr.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from conveyor.broker import validation as v
from conveyor.client import Client
from conveyor.http import wire
from conveyor.jobs import JOB_STATUSES
from conveyor.models import (
    Body,
    MessageAttribute,
    Queue,
    QueueAttributes,
    QueueStats,
    SendEntry,
)


def _json_line(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value).decode() + "\n")


def _table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> None:
    cells = [[str(c) for c in header]] + [["-" if c is None else str(c) for c in r]
                                          for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        sys.stdout.write("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() + "\n")


def _wants_json(args: argparse.Namespace) -> bool:
    return bool(args.output == "json")


def parse_attr(text: str) -> tuple[str, Any]:
    """`name=value`; the value is read as JSON when it is JSON (60, true, {...}), else text."""
    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, not {text!r}")
    try:
        return name, orjson.loads(raw)
    except orjson.JSONDecodeError:
        return name, raw


# queues -----------------------------------------------------------------------------
def _attribute_help() -> dict[str, str]:
    d = QueueAttributes()
    return {
        "visibility_timeout": f"seconds a received message stays leased (0-{v.MAX_VISIBILITY}"
                              f", default {d.visibility_timeout})",
        "delay_seconds": f"seconds before a new message is visible (0-{v.MAX_DELAY_SQS})",
        "receive_wait_seconds": f"default long-poll wait of a receive (0-{v.MAX_WAIT})",
        "retention_seconds": f"seconds a message is kept ({v.MIN_RETENTION}-"
                             f"{v.MAX_RETENTION}, default {d.retention_seconds})",
        "max_message_bytes": f"largest body ({v.MIN_MESSAGE_BYTES}-{v.MAX_MESSAGE_BYTES})",
        "max_receive_count": f"receives before dead-lettering (1-{v.MAX_RECEIVE_COUNT}; "
                             "with dead_letter_queue)",
        "dead_letter_queue": "the queue poison messages go to (with max_receive_count)",
        "paused": "true: sends are kept, nothing is delivered",
        "fifo": "true for a FIFO queue (its name ends in .fifo)",
        "content_based_deduplication": "FIFO: the body's SHA-256 is the deduplication id",
        "durability": "logged (default), or unlogged: PostgreSQL only, faster, lost on a crash",
        "tags": 'a JSON object of strings, e.g. tags=\'{"team": "shop"}\'',
        "redrive_allow_policy": "SQS's RedriveAllowPolicy JSON, kept for the SQS endpoint",
        "deduplication_scope": "FIFO: queue or messageGroup",
        "fifo_throughput_limit": "FIFO: perQueue or perMessageGroupId",
        "policy": "SQS's access Policy JSON, stored and returned",
        "kms_master_key_id": "SQS's KmsMasterKeyId, stored and returned",
        "kms_data_key_reuse_period_seconds": "SQS's KmsDataKeyReusePeriodSeconds, stored",
        "sqs_managed_sse_enabled": "SQS's SqsManagedSseEnabled, stored and returned",
    }


def attributes_epilog() -> str:
    """`queue create --help`'s list of attributes."""
    lines = [f"  {name:<28} {text}" for name, text in _attribute_help().items()]
    return ("queue attributes (--attr NAME=VALUE; values are read as JSON when they are "
            "JSON):\n" + "\n".join(lines) + "\n\nSQS spellings work too: VisibilityTimeout, "
            "MessageRetentionPeriod, maxReceiveCount,\ndeadLetterTargetArn (an ARN or a name), "
            "RedrivePolicy='{...}', FifoQueue, ...")


def native_attributes(pairs: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    """`--attr` pairs with SQS spellings (`VisibilityTimeout`, `maxReceiveCount`,
    `RedrivePolicy`...) turned into conveyor's names; other names pass as they are."""
    fields = {_squash(name): name for name in QueueAttributes.__dataclass_fields__}
    out: dict[str, Any] = {}
    for name, value in pairs:
        if name == "RedrivePolicy" and isinstance(value, Mapping):
            out.update(native_attributes(list(value.items())))
            continue
        if name == "deadLetterTargetArn":  # an ARN ends with the queue's name
            value = str(value).rsplit(":", 1)[-1]
        squashed = _squash(name)  # VisibilityTimeout, maxReceiveCount: the same name
        native = _SQS_NAMES.get(squashed) or fields.get(squashed)
        out[native if native and name not in QueueAttributes.__dataclass_fields__
            else name] = value
    return out


# SQS names that differ from conveyor's by more than case and underscores.
_SQS_NAMES = {"messageretentionperiod": "retention_seconds",
              "maximummessagesize": "max_message_bytes",
              "receivemessagewaittimeseconds": "receive_wait_seconds", "fifoqueue": "fifo",
              "deadlettertargetarn": "dead_letter_queue"}


def _squash(name: str) -> str:
    return name.replace("_", "").lower()


def queue_create(args: argparse.Namespace, client: Client) -> int:
    """Create a queue with optional attributes."""
    queue, created = client.create_queue(args.name, native_attributes(args.attr or []))
    if _wants_json(args):
        stats = QueueStats() if created else client.queue_stats(queue.name)
        _json_line(wire.queue_json(queue, stats))
    else:
        print(f"queue {queue.name} ready")
    return 0


def queue_list(args: argparse.Namespace, client: Client) -> int:
    """Every queue with its counts."""
    queues = _all_queues(client, args.prefix)
    if _wants_json(args):
        for queue, stats in queues:
            _json_line(wire.queue_json(queue, stats))
        return 0
    _table([(q.name, s.visible, s.in_flight, s.delayed, _age(s.oldest_age_seconds),
             s.dead_letters, "yes" if q.attributes.paused else "")
            for q, s in queues],
           ("NAME", "VISIBLE", "IN_FLIGHT", "DELAYED", "OLDEST", "DEAD_LETTERS", "PAUSED"))
    return 0


def _all_queues(client: Client, prefix: str) -> list[tuple[Queue, QueueStats]]:
    page_size = 1000
    queues = client.list_queues_with_stats(prefix, limit=page_size)
    page = queues
    while len(page) == page_size:
        page = client.list_queues_with_stats(prefix, after=page[-1][0].name, limit=page_size)
        queues += page
    return queues


def _age(seconds: float | None) -> str | None:
    return None if seconds is None else f"{seconds:.1f}s"


def queue_stats(args: argparse.Namespace, client: Client) -> int:
    """One queue's attributes and exact counts."""
    queue = wire.queue_json(*client.get_queue_with_stats(args.name))
    if _wants_json(args):
        _json_line(queue)
        return 0
    rows: list[tuple[str, Any]] = [("name", queue["name"]), ("region", queue["region"])]
    rows += [(k, v) for k, v in queue["stats"].items()]
    rows += [(k, _show(v)) for k, v in queue["attributes"].items()]
    _table(rows, ("FIELD", "VALUE"))
    return 0


def _show(value: Any) -> Any:
    if isinstance(value, Mapping | list):
        return orjson.dumps(value).decode()
    return value


def queue_delete(args: argparse.Namespace, client: Client) -> int:
    """Delete a queue."""
    client.delete_queue(args.name)
    _report(args, {"queue": args.name, "deleted": True}, f"deleted queue {args.name}")
    return 0


def queue_purge(args: argparse.Namespace, client: Client) -> int:
    """Delete every message of a queue."""
    purged = client.purge_queue(args.name)
    _report(args, {"queue": args.name, "purged": purged},
            f"purged {purged} messages from {args.name}")
    return 0


def queue_pause(args: argparse.Namespace, client: Client) -> int:
    """Pause (or with `args.resume`, resume) deliveries from a queue."""
    paused = not args.resume
    client.update_queue(args.name, {"paused": paused})
    _report(args, {"queue": args.name, "paused": paused},
            f"{'paused' if paused else 'resumed'} queue {args.name}")
    return 0


def _report(args: argparse.Namespace, data: dict[str, Any], text: str) -> None:
    if _wants_json(args):
        _json_line(data)
    else:
        print(text)


# messages ---------------------------------------------------------------------------
def send(args: argparse.Namespace, client: Client) -> int:
    """Send one message; BODY is text, or JSON with --json; '-' reads it from stdin."""
    text = sys.stdin.read() if args.body == "-" else args.body
    body: Any = text
    if args.json:
        try:
            body = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise SystemExit(f"conveyor: error: BODY is not valid JSON: {exc}") from None
    attributes = {k: MessageAttribute("Number" if isinstance(v, int | float)
                                      and not isinstance(v, bool) else "String", str(v))
                  for k, v in args.attr or []}
    entry = SendEntry(Body.of(body), args.delay, attributes, args.priority or 0,
                      args.dedup_id, args.group_id)
    [sent] = client.send(args.queue, [entry])
    if _wants_json(args):
        _json_line(wire.sent_json([sent])["messages"][0])
    else:
        print(sent.id + ("  (duplicate)" if sent.duplicate else ""))
    return 0


def receive(args: argparse.Namespace, client: Client) -> int:
    """Receive messages and print each as a JSON line (or, with `-o table`, a table for
    people); --delete acknowledges them."""
    messages = client.receive(args.queue, args.max, args.visibility, args.wait)
    if _wants_json(args):
        for message in wire.received_json(messages)["messages"]:
            _json_line(message)
    elif not messages:
        print("no messages", file=sys.stderr)
    else:
        _table([(m.id, m.receive_count, _when(m.sent_at), _when(m.lease_until),
                 _clip(m.body.text)) for m in messages],
               ("ID", "RECEIVES", "SENT (UTC)", "LEASED UNTIL (UTC)", "BODY"))
    if args.delete and messages:
        results = client.delete(args.queue, [m.receipt_handle for m in messages])
        failed = [r for r in results if r.status != "ok"]
        for result in failed:
            print(f"conveyor: not deleted: {result.message}", file=sys.stderr)
        if failed:
            return 1
    return 0


def _when(ms: int | None) -> str | None:
    if ms is None:
        return None
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}"


def _clip(text: str, width: int = 60) -> str:
    flat = text.replace("\n", "\\n")
    return flat if len(flat) <= width else flat[:width - 1] + "…"


def redrive(args: argparse.Namespace, client: Client) -> int:
    """Move a dead-letter queue's messages back; waits for the task unless --no-wait."""
    task = client.start_redrive(args.queue, args.destination, args.max_per_second)
    while task.status == "running" and args.wait:
        time.sleep(0.5)
        task = client.get_move_task(task.id)
    if _wants_json(args):
        _json_line(wire.task_json(task))
    elif task.status == "completed" and task.to_move == 0 and task.moved == 0:
        where = f"to {task.destination_queue}" if task.destination_queue else (
            "back to a source queue (only dead-lettered messages know theirs; "
            "use --destination for the rest)")
        print(f"nothing to move: {args.queue} holds no message that can go {where}.")
    else:
        print(f"task {task.id}: {task.status}, moved {task.moved} of {task.to_move}"
              + (f" ({task.error})" if task.error else ""))
    return 0 if task.status in ("completed", "running") else 1


# jobs -------------------------------------------------------------------------------
def job_status(args: argparse.Namespace, client: Client) -> int:
    """A tracked job's status, attempts, last error and result."""
    found = client.jobs.status_get(args.job_id)
    if found is None:
        print(f"conveyor: error: No status for job {args.job_id[:200]!r}. [job_not_found]",
              file=sys.stderr)
        return 1
    job = wire.job_status_json(found)
    if _wants_json(args):
        _json_line(job)
        return 0
    _table([(k, _show(job[k])) for k in ("job_id", "status", "queue", "task", "attempts",
                                          "error", "result", "updated_at")],
           ("FIELD", "VALUE"))
    return 0


def job_counts(args: argparse.Namespace, client: Client) -> int:
    """How many tracked jobs are in each status."""
    counts = client.jobs.status_counts(args.queue)
    if _wants_json(args):
        _json_line({"queue": args.queue, "counts": counts})
    else:
        order = {status: i for i, status in enumerate(JOB_STATUSES)}
        _table(sorted(counts.items(), key=lambda kv: order.get(kv[0], len(order))),
               ("STATUS", "JOBS"))
    return 0
