"""`conveyor demo` and `conveyor notify ...`: parsing only; the work is in
`conveyor.notify`."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from conveyor.errors import InvalidInput


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `demo` and `notify`."""
    demo = sub.add_parser("demo", help="the million-notification run against local peers")
    demo.add_argument("--messages", type=int, default=1_000_000, metavar="N",
                      help="notifications to send (default 1,000,000)")
    demo.add_argument("--database", metavar="URL",
                      help="default: a fresh embedded SQLite file; or postgresql://...")
    demo.add_argument("--mix", default="email=0.7,push=0.3", type=_mix,
                      help="channel shares (default email=0.7,push=0.3)")
    demo.add_argument("--cost-per-hour", type=float, default=0.05, metavar="USD",
                      help="the machine's price, for the cost estimate (default 0.05)")
    demo.add_argument("--workers", type=int, default=0,
                      help="delivery worker processes (default: one per core)")
    demo.add_argument("--verify-every", type=int, default=0, metavar="K",
                      help="push endpoint verifies 1 in K (default: all up to 20,000, "
                           "else 1 in 20)")
    demo.add_argument("--no-smtp-sink", action="store_true",
                      help="use the aiosmtpd sink even when Postfix's smtp-sink is found")
    demo.add_argument("--no-progress", action="store_true", help="no live progress bars")
    demo.set_defaults(run=_demo)

    notify = sub.add_parser("notify", help="notification status and counts")
    actions = notify.add_subparsers(dest="action", required=True, metavar="ACTION")
    status = actions.add_parser("status", help="one notification's status")
    status.add_argument("delivery_id")
    counts = actions.add_parser("counts", help="notifications by channel and status")
    counts.add_argument("--channel")
    for parser in (status, counts):
        parser.add_argument("--database", metavar="URL", help="default: embedded SQLite")
    status.set_defaults(run=_status)
    counts.set_defaults(run=_counts)


def _mix(text: str) -> dict[str, float]:
    try:
        mix = {k.strip(): float(v) for k, v in (p.split("=") for p in text.split(","))}
    except ValueError:
        raise argparse.ArgumentTypeError("write channel=share,... e.g. email=0.7,push=0.3"
                                         ) from None
    if set(mix) - {"email", "push"} or any(v < 0 for v in mix.values()) or \
            not sum(mix.values()):
        raise argparse.ArgumentTypeError("channels are email and push, shares >= 0")
    return mix


def _demo(args: argparse.Namespace) -> int:
    from conveyor.notify.demo import DemoConfig, run_demo

    if args.messages < 1:
        raise InvalidInput("--messages must be at least 1.")
    report = run_demo(DemoConfig(
        messages=args.messages, database=args.database, mix=args.mix,
        cost_per_hour=args.cost_per_hour, workers=args.workers,
        verify_every=args.verify_every, use_smtp_sink=not args.no_smtp_sink,
        progress=not args.no_progress and sys.stderr.isatty()))
    return 0 if report.ok else 1


async def _with_broker(url: str | None, fn: object) -> object:
    from conveyor.broker.broker import Broker
    from conveyor.storage.factory import storage_from_url

    async with Broker(storage_from_url(url), sweep_interval=None) as broker:
        return await fn(broker)  # type: ignore[operator]


def _status(args: argparse.Namespace) -> int:
    async def run(broker: object) -> object:
        return await broker.ledger.get(args.delivery_id)  # type: ignore[attr-defined]

    row = asyncio.run(_with_broker(args.database, run))
    if row is None:
        print(f"conveyor: no notification {args.delivery_id!r}", file=sys.stderr)
        return 1
    print(json.dumps({k: getattr(row, k) for k in row.__slots__}))  # type: ignore[attr-defined]
    return 0


def _counts(args: argparse.Namespace) -> int:
    async def run(broker: object) -> object:
        return await broker.ledger.counts(args.channel)  # type: ignore[attr-defined]

    print(json.dumps(asyncio.run(_with_broker(args.database, run))))
    return 0
