"""`conveyor recipient put|get|delete|import`: parsing only; the work is in
`broker.recipients` (and `conveyor.recipients` for the line formats)."""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from conveyor.broker.broker import Broker
from conveyor.cli.local import json_object, with_broker
from conveyor.errors import InvalidInput
from conveyor.recipients import recipient_json

T = TypeVar("T")


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `recipient`."""
    top = sub.add_parser("recipient", help="people to notify: time zone, addresses, "
                                           "preferences, quiet hours")
    actions = top.add_subparsers(dest="action", required=True, metavar="ACTION")
    put = actions.add_parser("put", help="create or replace a recipient; prints it")
    put.add_argument("id")
    put.add_argument("--json", dest="doc", metavar="OBJECT",
                     help="the whole recipient as JSON (as PUT /v1/recipients/{id}); the "
                          "options below are applied on top")
    put.add_argument("--timezone", help="IANA zone, e.g. Europe/Berlin (default UTC)")
    put.add_argument("--locale", help="e.g. de-DE (default en)")
    for channel in ("email", "fcm", "apns"):
        put.add_argument(f"--{channel}", action="append", metavar="ADDRESS",
                         help=f"an {channel} address (repeatable)")  # an email, an FCM, an APNs
    put.add_argument("--push", action="append", metavar="SUBSCRIPTION_JSON",
                     help="a Web Push subscription (repeatable)")
    put.add_argument("--opt-out", action="append", default=[], metavar="CATEGORY:CHANNEL")
    put.add_argument("--opt-in", action="append", default=[], metavar="CATEGORY:CHANNEL")
    put.add_argument("--quiet", metavar="HH:MM-HH:MM", help="quiet hours, local time")
    get = actions.add_parser("get", help="print a recipient")
    get.add_argument("id")
    delete = actions.add_parser("delete", help="delete a recipient")
    delete.add_argument("id")
    load = actions.add_parser("import", help="import recipients from a CSV file (with a "
                                             "header row) or JSON lines; prints the rate")
    load.add_argument("file", help="the file, or - for standard input")
    load.add_argument("--format", choices=["csv", "jsonl"],
                      help="default: from the file name (.csv, else JSON lines)")
    load.add_argument("--batch", type=int, default=5000, help="recipients per transaction")
    tell = actions.add_parser("notify", help="notify a recipient on their channels (by "
                                             "preferences and quiet hours); prints each "
                                             "address's fate")
    tell.add_argument("id")
    tell.add_argument("--category", required=True)
    tell.add_argument("--template", required=True)
    tell.add_argument("--data", type=json_object, default={}, help="a JSON object")
    tell.add_argument("--critical", action="store_true",
                      help="bypass preferences and quiet hours")
    tell.add_argument("--opt-in", dest="opt_in_category", action="store_true",
                      help="an opt-in category: only channels the recipient turned on")
    tell.add_argument("--channel", action="append", dest="channels", metavar="CHANNEL",
                      help="only this channel (repeatable)")
    tell.add_argument("--idempotency-key")
    tell.add_argument("--digest-key", metavar="KEY",
                      help="merge into the recipient's digest for KEY (needs --digest-window)")
    tell.add_argument("--digest-window", metavar="DURATION",
                      help="how long a digest collects: 30s, 10m, 2h, 1d (up to 7d)")
    tell.add_argument("--templates", metavar="DIR", help="check the template name here")
    for parser in (put, get, delete, load, tell):
        parser.add_argument("--database", metavar="URL", help="default: embedded SQLite")
    put.set_defaults(run=_put)
    get.set_defaults(run=_get)
    delete.set_defaults(run=_delete)
    load.set_defaults(run=_import)
    tell.set_defaults(run=_notify)


def _with_broker(url: str | None, fn: Callable[[Broker], Awaitable[T]]) -> T:
    return asyncio.run(with_broker(url, fn))


def _put(args: argparse.Namespace) -> int:
    doc: dict[str, Any] = {}
    if args.doc:
        try:
            doc = json.loads(args.doc)
        except ValueError:
            raise InvalidInput("--json is not JSON.") from None
        if not isinstance(doc, dict):
            raise InvalidInput("--json must be a JSON object.")
    for key in ("timezone", "locale"):
        if getattr(args, key):
            doc[key] = getattr(args, key)
    addresses = dict(doc.get("addresses") or {})
    for channel in ("email", "fcm", "apns"):
        if getattr(args, channel):
            addresses[channel] = getattr(args, channel)
    if args.push:
        try:
            addresses["push"] = [json.loads(p) for p in args.push]
        except ValueError:
            raise InvalidInput("--push takes a subscription as JSON.") from None
    doc["addresses"] = addresses
    preferences = {k: dict(v) for k, v in (doc.get("preferences") or {}).items()}
    for flag, on in ((args.opt_out, False), (args.opt_in, True)):
        for pair in flag:
            category, _, channel = pair.rpartition(":")
            preferences.setdefault(category, {})[channel] = on
    doc["preferences"] = preferences
    if args.quiet:
        start, _, end = args.quiet.partition("-")
        doc["quiet_hours"] = {"start": start, "end": end}
    stored = _with_broker(args.database, lambda b: b.recipients.put(args.id, doc))
    print(json.dumps(recipient_json(stored)))
    return 0


def _get(args: argparse.Namespace) -> int:
    found = _with_broker(args.database, lambda b: b.recipients.get(args.id))
    if found is None:
        print(f"conveyor: no recipient {args.id!r}", file=sys.stderr)
        return 1
    print(json.dumps(recipient_json(found)))
    return 0


def _delete(args: argparse.Namespace) -> int:
    if not _with_broker(args.database, lambda b: b.recipients.delete(args.id)):
        print(f"conveyor: no recipient {args.id!r}", file=sys.stderr)
        return 1
    return 0


def _import(args: argparse.Namespace) -> int:
    fmt = args.format or ("csv" if str(args.file).endswith(".csv") else "jsonl")
    stream = sys.stdin if args.file == "-" else Path(args.file).open(  # noqa: SIM115
        newline="", encoding="utf-8")

    def lines() -> Iterator[Any]:
        return iter(csv.DictReader(stream)) if fmt == "csv" else iter(stream)

    def progress(done: int, seconds: float) -> None:
        print(f"  {done:,} recipients, {done / max(seconds, 1e-9):,.0f}/s", file=sys.stderr,
              flush=True)

    try:
        seconds = 0.0

        async def run(broker: Broker) -> int:
            nonlocal seconds
            loop = asyncio.get_running_loop()
            started = loop.time()
            count = await broker.recipients.import_lines(
                lines(), batch=args.batch, first_line=2 if fmt == "csv" else 1,
                progress=progress)
            seconds = loop.time() - started
            return count

        count = _with_broker(args.database, run)
    finally:
        if stream is not sys.stdin:
            stream.close()
    print(json.dumps({"imported": count, "seconds": round(seconds, 3),
                      "per_second": round(count / max(seconds, 1e-9))}))
    return 0


def _notify(args: argparse.Namespace) -> int:
    from conveyor.notify import Channel, Notifier
    from conveyor.notify.people import PersonNotification, notify_recipient
    from conveyor.recipients import ADDRESS_CHANNELS, Category

    note = PersonNotification(
        args.id, Category(args.category, args.critical, args.opt_in_category), args.template,
        args.data, args.idempotency_key, tuple(args.channels) if args.channels else None,
        None if args.digest_key is None and args.digest_window is None else
        {"key": args.digest_key, "window": args.digest_window})

    async def run(broker: Broker) -> list[dict[str, Any]]:
        # Enqueuing needs only the channels' names; delivery workers run the real ones.
        notifier = Notifier(broker, channels={c: Channel() for c in ADDRESS_CHANNELS},
                            templates=args.templates)
        planned = await notify_recipient(notifier, note,
                                         check_template=args.templates is not None)
        return [p.to_json() for p in planned]

    print(json.dumps({"recipient": args.id,
                      "deliveries": _with_broker(args.database, run)}))
    return 0
