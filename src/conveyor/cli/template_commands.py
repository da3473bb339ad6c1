"""`conveyor template put|get|delete|list|preview`: parsing only; the work is in
`broker.templates` (and `conveyor.notify.locales.preview_template`)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from conveyor.broker.broker import Broker
from conveyor.cli.local import json_object, with_broker
from conveyor.errors import InvalidInput
from conveyor.locales import template_doc

T = TypeVar("T")


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `template`."""
    top = sub.add_parser("template", help="templates per locale, stored in the database")
    actions = top.add_subparsers(dest="action", required=True, metavar="ACTION")
    put = actions.add_parser("put", help="create or replace a template; prints it")
    put.add_argument("name")
    source = put.add_mutually_exclusive_group(required=True)
    source.add_argument("--json", dest="doc", metavar="OBJECT",
                        help='the template as JSON (as PUT /v1/templates/{name}): '
                             '{"default_locale": "en", "locales": {"en": {"subject", '
                             '"text", "html", "channels"}, ...}}')
    source.add_argument("--file", metavar="PATH", help="the same JSON, from a file")
    get = actions.add_parser("get", help="print a template")
    get.add_argument("name")
    delete = actions.add_parser("delete", help="delete a template")
    delete.add_argument("name")
    listing = actions.add_parser("list", help="print templates by name, one JSON per line")
    listing.add_argument("--after", default="", help="names after this one")
    listing.add_argument("--limit", type=int, default=100)
    show = actions.add_parser("preview", help="render a template for a recipient (their "
                                              "locale and channels); sends nothing")
    show.add_argument("name")
    show.add_argument("--recipient", metavar="ID")
    show.add_argument("--locale", help="instead of the recipient's")
    show.add_argument("--channel", action="append", dest="channels", metavar="CHANNEL",
                      help="only this channel (repeatable)")
    show.add_argument("--data", type=json_object, default={}, help="a JSON object")
    for parser in (put, get, delete, listing, show):
        parser.add_argument("--database", metavar="URL", help="default: embedded SQLite")
    put.set_defaults(run=_put)
    get.set_defaults(run=_get)
    delete.set_defaults(run=_delete)
    listing.set_defaults(run=_list)
    show.set_defaults(run=_preview)


def _with_broker(url: str | None, fn: Callable[[Broker], Awaitable[T]]) -> T:
    return asyncio.run(with_broker(url, fn))


def _put(args: argparse.Namespace) -> int:
    text = args.doc if args.doc is not None else Path(args.file).read_text(encoding="utf-8")
    try:
        doc = json.loads(text)
    except ValueError:
        raise InvalidInput("The template is not JSON.") from None
    if not isinstance(doc, dict):
        raise InvalidInput("The template must be a JSON object.")
    stored = _with_broker(args.database, lambda b: b.templates.put(args.name, doc))
    print(json.dumps(template_doc(stored), ensure_ascii=False))
    return 0


def _get(args: argparse.Namespace) -> int:
    found = _with_broker(args.database, lambda b: b.templates.get(args.name))
    if found is None:
        print(f"conveyor: no template {args.name!r}", file=sys.stderr)
        return 1
    print(json.dumps(template_doc(found), ensure_ascii=False))
    return 0


def _delete(args: argparse.Namespace) -> int:
    if not _with_broker(args.database, lambda b: b.templates.delete(args.name)):
        print(f"conveyor: no template {args.name!r}", file=sys.stderr)
        return 1
    return 0


def _list(args: argparse.Namespace) -> int:
    found = _with_broker(args.database, lambda b: b.templates.list(args.after, args.limit))
    for t in found:
        print(json.dumps(template_doc(t), ensure_ascii=False))
    return 0


def _preview(args: argparse.Namespace) -> int:
    from conveyor.notify.locales import preview_template

    async def run(broker: Broker) -> dict[str, Any]:
        return await preview_template(broker, args.name, args.data, recipient=args.recipient,
                                      locale=args.locale, channels=args.channels)

    print(json.dumps(_with_broker(args.database, run), ensure_ascii=False))
    return 0
