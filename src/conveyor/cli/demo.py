"""`conveyor demo`: parsing only; the run is in `conveyor.demo`."""

from __future__ import annotations

import argparse
import sys

from conveyor.errors import InvalidInput


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `demo`."""
    demo = sub.add_parser("demo", help="the million-notification run against local peers")
    demo.add_argument("--messages", type=int, default=1_000_000, metavar="N",
                      help="notifications to send (default 1,000,000)")
    demo.add_argument("--database", metavar="URL",
                      help="default: a fresh embedded SQLite file; or postgresql://...")
    demo.add_argument("--mix", default="email=0.6,webpush=0.15,fcm=0.15,apns=0.1",
                      type=_mix, help="channel shares of email, webpush (or push), fcm and "
                      "apns (default email=0.6,webpush=0.15,fcm=0.15,apns=0.1)")
    demo.add_argument("--cost-per-hour", type=float, default=0.05, metavar="USD",
                      help="the machine's price, for the cost estimate (default 0.05)")
    demo.add_argument("--workers", type=int, default=0,
                      help="delivery worker processes, shared by email and the other "
                           "channels, at least one each (default: one per core on SQLite, "
                           "two on PostgreSQL)")
    demo.add_argument("--verify-every", type=int, default=0, metavar="K",
                      help="push endpoint verifies 1 in K (default: all up to 20,000, "
                           "else 1 in 20)")
    demo.add_argument("--no-smtp-sink", action="store_true",
                      help="use the aiosmtpd sink even when Postfix's smtp-sink is found")
    demo.add_argument("--no-progress", action="store_true",
                      help="no progress output: neither the live bars (on a terminal) nor "
                           "the plain line printed every 10 s otherwise")
    demo.add_argument("--kill-workers-every", type=float, default=0.0, metavar="SECONDS",
                      help="kill -9 a delivery worker this often and start a new one; the "
                           "check then wants none lost and extra copies within kills x "
                           "in_flight (400) per channel")
    demo.add_argument("--recipients", type=int, default=0, metavar="N",
                      help="the recipient run instead: N people imported (10%% opted out "
                           "of the demo's category, 20%% inside quiet hours), then one bulk "
                           "notify of them all; --messages is ignored")
    demo.add_argument("--hold-seconds", type=float, default=None, metavar="SECONDS",
                      help="the recipient run's quiet hours end at least this long after "
                           "the import (default 60 + 1 per 10,000 people)")
    demo.set_defaults(run=_demo)


def _mix(text: str) -> dict[str, float]:
    """`email=0.6,webpush=0.15,...` as shares by the demo's channel names."""
    try:
        mix = {k.strip().replace("webpush", "push"): float(v)
               for k, v in (p.split("=") for p in text.split(","))}
    except ValueError:
        raise argparse.ArgumentTypeError("write channel=share,... e.g. email=0.7,fcm=0.3"
                                         ) from None
    if set(mix) - {"email", "push", "fcm", "apns"} or any(v < 0 for v in mix.values()) or \
            not sum(mix.values()):
        raise argparse.ArgumentTypeError("channels are email, webpush, fcm and apns; "
                                         "shares >= 0, not all 0")
    return mix


def _demo(args: argparse.Namespace) -> int:
    from conveyor.collector import tune_collector
    from conveyor.demo import DemoConfig, run_demo
    from conveyor.demo.ending import Interrupted

    if args.messages < 1:
        raise InvalidInput("--messages must be at least 1.")
    if args.recipients < 0 or (args.hold_seconds is not None and args.hold_seconds < 0):
        raise InvalidInput("--recipients and --hold-seconds must be 0 or more.")
    if args.recipients and args.kill_workers_every:
        raise InvalidInput("--kill-workers-every runs with --messages, not --recipients.")
    if args.kill_workers_every < 0:
        raise InvalidInput("--kill-workers-every must be 0 (off) or more seconds.")
    tune_collector()  # this process is the producer; its workers tune theirs
    try:
        report = run_demo(DemoConfig(
            messages=args.messages, database=args.database, mix=args.mix,
            cost_per_hour=args.cost_per_hour, workers=args.workers,
            verify_every=args.verify_every, use_smtp_sink=not args.no_smtp_sink,
            progress=not args.no_progress,
            kill_workers_every=args.kill_workers_every, recipients=args.recipients,
            hold_seconds=args.hold_seconds))
    except Interrupted as stopped:
        print(f"conveyor demo: stopped by {stopped.name}; its workers and peers are ended "
              "and its temporary files removed", file=sys.stderr)
        return 128 + stopped.signum  # as a shell reports a death by that signal
    return 0 if report.ok else 1
