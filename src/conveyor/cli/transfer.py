"""`conveyor export QUEUE` and `conveyor import QUEUE`: a queue's messages as JSON lines.

For backups and for moving between servers or databases (SQLite <-> PostgreSQL), through
the HTTP API. One line a message, oldest first:

    {"id": ..., "kind": "json" | "text", "body": ..., "attributes": {...}, "priority": 0,
     "group_id": null, "deduplication_id": null, "sent_at": ms, "receive_count": 0,
     "last_error": null, "source_queue": null}

`kind` says how the body was sent: `json` bodies are the JSON value itself, `text` bodies
a string. Export reads with peek, so it leases nothing and sees in-flight and delayed
messages too. Import sends in batches (all-or-nothing each); imported messages are visible
at once with fresh ids and receive counts (`id`, times, counts and errors are kept in the
file for the record). A deduplication id seen within the last 5 minutes drops the message,
as on any send.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterable, Iterator
from typing import IO, Any

from conveyor.client import Client
from conveyor.errors import InvalidInput
from conveyor.http import wire
from conveyor.models import Body, MessageAttribute, SendEntry, dumps_json

PAGE = 1000
BATCH_MESSAGES = 500
BATCH_BYTES = 4 * 1024 * 1024  # well under the server's default 10 MiB request limit


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `export` and `import`."""
    for name, run, text in (("export", export, "write a queue's messages as JSON lines"),
                            ("import", import_, "send JSON lines (from export) to a queue")):
        parser = sub.add_parser(name, help=text, description=__doc__.split("\n\n")[0])
        parser.add_argument("queue")
        parser.add_argument("-f", "--file", metavar="PATH",
                            help="write to / read from this file instead of stdout / stdin")
        parser.add_argument("--url", help="server URL (default: CONVEYOR_URL or local)")
        if name == "import":
            parser.add_argument("--create", action="store_true",
                                help="create the queue (default attributes) if missing")
        parser.set_defaults(client=run)


def export_lines(client: Client, queue: str) -> Iterator[bytes]:
    """Every message of a queue as one JSON line each, oldest first."""
    after: str | None = None
    while True:
        page = client.peek(queue, PAGE, after)
        for message in wire.peeked_json(page)["messages"]:
            yield dumps_json(export_record(message)).encode() + b"\n"
        if len(page) < PAGE:
            return
        after = page[-1].id


def export_record(message: dict[str, Any]) -> dict[str, Any]:
    """A peeked message (wire form) as an export line's object."""
    body = message["body"]
    return {"id": message["id"], "kind": "text" if isinstance(body, str) else "json",
            "body": body, "attributes": message.get("attributes") or {},
            "priority": message.get("priority", 0), "group_id": message.get("group_id"),
            "deduplication_id": message.get("deduplication_id"),
            "sent_at": message.get("sent_at"), "receive_count": message.get("receive_count"),
            "last_error": message.get("last_error"),
            "source_queue": message.get("source_queue")}


def import_record(record: Any, line: int) -> SendEntry:
    """An export line's object as a message to send (ValueError naming the line)."""
    if not isinstance(record, dict) or "body" not in record:
        raise ValueError(f"line {line}: not an exported message (no body)")
    kind = record.get("kind", "json" if not isinstance(record["body"], str) else "text")
    if kind == "text" and not isinstance(record["body"], str):
        raise ValueError(f"line {line}: a text body must be a string")
    if kind not in ("text", "json"):
        raise ValueError(f"line {line}: kind must be text or json")
    attributes = record.get("attributes") or {}
    if not isinstance(attributes, dict) or not all(
            isinstance(a, dict) and isinstance(a.get("type"), str)
            and isinstance(a.get("value"), str) for a in attributes.values()):
        raise ValueError(f"line {line}: attributes must map names to "
                         '{"type": ..., "value": ...}')
    # Values go on as they are (Binary ones stay base64): the server checks them all.
    return SendEntry(Body.of(record["body"]), None,
                     {k: MessageAttribute(a["type"], a["value"]) for k, a in attributes.items()},
                     record.get("priority") or 0, record.get("deduplication_id"),
                     record.get("group_id"))


def batches(lines: Iterable[bytes]) -> Iterator[tuple[list[int], list[SendEntry]]]:
    """(line numbers, messages) in batches bounded by count and bytes."""
    batch: list[SendEntry] = []
    numbers: list[int] = []
    size = 0
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)  # the standard library: integers stay exact
        except ValueError as exc:
            raise ValueError(f"line {number}: not JSON ({exc})") from None
        if batch and (len(batch) >= BATCH_MESSAGES or size + len(raw) > BATCH_BYTES):
            yield numbers, batch
            batch, numbers, size = [], [], 0
        batch.append(import_record(record, number))
        numbers.append(number)
        size += len(raw)
    if batch:
        yield numbers, batch


def export(args: argparse.Namespace, client: Client) -> int:
    """Write the queue's messages to the file or stdout."""
    client.get_queue(args.queue)  # a missing queue is an error, not an empty file
    count = 0
    with _open(args.file, "wb") as out:
        for line in export_lines(client, args.queue):
            out.write(line)
            count += 1
    print(f"conveyor: exported {count} messages from {args.queue}", file=sys.stderr)
    return 0


def import_(args: argparse.Namespace, client: Client) -> int:
    """Send the file's (or stdin's) messages to the queue."""
    if args.create:
        client.create_queue(args.queue)
    sent = duplicates = 0
    with _open(args.file, "rb") as source:
        try:
            for numbers, batch in batches(source):
                try:
                    results = client.send(args.queue, batch)
                except InvalidInput as exc:
                    if exc.index is not None and 0 <= exc.index < len(numbers):
                        exc.message = (f"line {numbers[exc.index]}: {exc.message} "
                                       f"({sent} messages sent before its batch)")
                        exc.index = None
                    raise
                sent += len(results)
                duplicates += sum(1 for r in results if r.duplicate)
        except ValueError as exc:
            print(f"conveyor: error: {exc}; {sent} messages sent before it", file=sys.stderr)
            return 1
    extra = f" ({duplicates} were duplicates and not enqueued)" if duplicates else ""
    print(f"conveyor: imported {sent} messages into {args.queue}{extra}", file=sys.stderr)
    return 0


@contextlib.contextmanager
def _open(path: str | None, mode: str) -> Iterator[IO[bytes]]:
    if path is None or path == "-":
        yield sys.stdout.buffer if "w" in mode else sys.stdin.buffer
        return
    with open(path, mode) as handle:
        yield handle
