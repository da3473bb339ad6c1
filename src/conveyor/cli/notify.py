"""`conveyor notify ...`: parsing only; the work is in `conveyor.notify`."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys

from conveyor.cli.local import json_object, with_broker
from conveyor.digits import host_port
from conveyor.errors import InvalidInput


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `notify`."""
    notify = sub.add_parser("notify", help="send notifications, run delivery workers, "
                                           "read status and counts")
    actions = notify.add_subparsers(dest="action", required=True, metavar="ACTION")
    send = actions.add_parser("send", help="enqueue one notification; prints its id")
    send.add_argument("--channel", required=True,
                      choices=["email", "push", "webhook", "fcm", "apns"])
    send.add_argument("--to", required=True, help="email address, push subscription JSON, "
                      "webhook URL, or FCM/APNs device token")
    send.add_argument("--template")
    send.add_argument("--data", type=json_object, default={},
                      help="template data (webhook: the payload), a JSON object")
    send.add_argument("--subject")
    send.add_argument("--text")
    send.add_argument("--html")
    send.add_argument("--event", default="notification", help="webhook event name")
    send.add_argument("--idempotency-key", help="the same key again sends nothing")
    send.add_argument("--locale", help="the template's locale, e.g. pt-BR (falls back to pt, "
                                       "then the template's default)")
    worker = actions.add_parser("worker", help="deliver queued notifications until stopped")
    worker.add_argument("--smtp", metavar="HOST:PORT", help="run the email channel")
    worker.add_argument("--sender", default="conveyor@localhost")
    worker.add_argument("--starttls", action="store_true")
    worker.add_argument("--tls", action="store_true", help="implicit TLS (port 465)")
    worker.add_argument("--smtp-user")
    worker.add_argument("--smtp-password-env", metavar="VAR",
                        help="environment variable holding the SMTP password")
    worker.add_argument("--pool-size", type=int, default=10, help="SMTP connections")
    worker.add_argument("--email-rate", metavar="N/PERIOD",
                        help="e.g. 300/m, across every worker")
    worker.add_argument("--vapid-key", metavar="PEM", help="run the push channel")
    worker.add_argument("--vapid-sub", default="mailto:ops@localhost")
    worker.add_argument("--push-rate", metavar="N/PERIOD")
    worker.add_argument("--webhook-secret-env", metavar="VAR",
                        help="run the webhook channel, signing with this variable's value")
    worker.add_argument("--fcm-credentials", metavar="JSON",
                        help="run the fcm channel with this service account key file")
    worker.add_argument("--fcm-url", metavar="URL", help="default https://fcm.googleapis.com")
    worker.add_argument("--fcm-rate", metavar="N/PERIOD", default="600000/m",
                        help="default 600000/m (FCM's project quota)")
    worker.add_argument("--apns-key", metavar="P8", help="run the apns channel with this key")
    worker.add_argument("--apns-key-id")
    worker.add_argument("--apns-team-id")
    worker.add_argument("--apns-topic", metavar="BUNDLE_ID")
    worker.add_argument("--apns-url", metavar="URL",
                        help="default https://api.push.apple.com (sandbox: "
                             "https://api.sandbox.push.apple.com)")
    worker.add_argument("--apns-rate", metavar="N/PERIOD")
    worker.add_argument("--ca-file", metavar="PEM",
                        help="extra certificates to trust for FCM and APNs")
    worker.add_argument("--lanes", type=int, default=4)
    worker.add_argument("--in-flight", type=int, default=400, metavar="N",
                        help="most notifications per channel handed to the provider "
                             "without a recorded outcome: the most a kill -9 can leave in "
                             "doubt, i.e. extra copies per crash (default 400)")
    worker.add_argument("--hold-unknown", action="append", default=[], metavar="CHANNEL",
                        help="record this channel's in-doubt notifications `unknown` for "
                             "an operator instead of resending them (repeatable)")
    worker.add_argument("--visibility-timeout", type=int, default=120)
    worker.add_argument("--seconds", type=float, help="stop after this long")
    for parser in (send, worker):
        parser.add_argument("--templates", metavar="DIR",
                            help="folder of NAME.subject / NAME.txt / NAME.html")
    status = actions.add_parser("status", help="one notification's status")
    status.add_argument("delivery_id")
    counts = actions.add_parser("counts", help="notifications by channel and status, and "
                                               "how many were resent after a crash")
    counts.add_argument("--channel", help="one channel (email, push, webhook, fcm, apns, "
                        "apprise, or one a notifier made a notify-<channel> queue for)")
    bounces = actions.add_parser("bounces", help="an inbound SMTP address that applies "
                                 "bounce (RFC 3464) and complaint (RFC 5965) reports")
    bounces.add_argument("--listen", default="127.0.0.1:2526", metavar="HOST:PORT")
    bounces.add_argument("--soft-limit", type=int, default=3,
                         help="soft bounces (within a week) that suppress an address")
    bounces.add_argument("--seconds", type=float, help="stop after this long")
    for parser in (send, worker, status, counts, bounces):
        parser.add_argument("--database", metavar="URL", help="default: embedded SQLite")
    send.set_defaults(run=_send)
    worker.set_defaults(run=_worker)
    status.set_defaults(run=_status)
    counts.set_defaults(run=_counts)
    bounces.set_defaults(run=_bounces)


def _bounces(args: argparse.Namespace) -> int:
    from conveyor.notify.feedback import FeedbackSettings
    from conveyor.notify.inbound import BounceHandler, serve_bounces

    if (address := host_port(args.listen)) is None:
        raise InvalidInput("--listen must be host:port.", field="listen")
    host, port = address

    async def run(broker: object) -> object:
        handler = BounceHandler(broker, FeedbackSettings(  # type: ignore[arg-type]
            soft_limit=args.soft_limit))
        server = await serve_bounces(handler, host, port)
        bound = server.sockets[0].getsockname()
        print(f"conveyor notify bounces: listening on {bound[0]}:{bound[1]}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if args.seconds is not None:
            loop.call_later(args.seconds, stop.set)
        await stop.wait()
        server.close()
        await server.wait_closed()
        return {"reports": handler.reports, "ignored": handler.ignored}

    print(json.dumps(asyncio.run(with_broker(args.database, run))))
    return 0


def _send(args: argparse.Namespace) -> int:
    from conveyor.notify import Channel, Notifier
    from conveyor.notify.notifier import DUPLICATE
    from conveyor.notify.settings import notification

    note = notification(args.channel, args.to, template=args.template, data=args.data,
                        subject=args.subject, text=args.text, html=args.html,
                        idempotency_key=args.idempotency_key, event=args.event,
                        locale=args.locale)
    # Enqueuing needs only the channel's name (and the templates, to check the name).
    notifier = Notifier(args.database, channels={args.channel: Channel()},
                        templates=args.templates)
    fresh: set[str] = set()

    async def run() -> list[str]:
        async with notifier:
            return await notifier.asend_many([note], fresh=fresh)

    (delivery_id,) = asyncio.run(run())
    # Said as `POST /v1/recipients/{id}/notify` says it: the same id printed again alone
    # read as a second notification sent.
    made = delivery_id in fresh
    print(json.dumps({"delivery_id": delivery_id, "channel": args.channel,
                      "status": "queued" if made else "duplicate",
                      "reason": None if made else DUPLICATE}))
    return 0


def _worker(args: argparse.Namespace) -> int:
    import os

    from conveyor.collector import tune_collector
    from conveyor.notify import DeliveryOptions
    from conveyor.notify.settings import ChannelSettings, run_worker
    from conveyor.rlimits import raise_open_files_limit

    raise_open_files_limit()  # SMTP pools and push connections add up
    tune_collector()

    def env(name: str | None) -> str | None:
        if name is None:
            return None
        if name not in os.environ:
            raise InvalidInput(f"The environment variable {name} is not set.")
        return os.environ[name]

    channels = ChannelSettings(
        smtp=args.smtp, sender=args.sender, starttls=args.starttls, tls=args.tls,
        username=args.smtp_user, password=env(args.smtp_password_env),
        pool_size=args.pool_size, email_rate=args.email_rate, vapid_key=args.vapid_key,
        vapid_sub=args.vapid_sub, push_rate=args.push_rate,
        webhook_secret=env(args.webhook_secret_env), fcm_credentials=args.fcm_credentials,
        fcm_url=args.fcm_url, fcm_rate=args.fcm_rate, apns_key=args.apns_key,
        apns_key_id=args.apns_key_id, apns_team_id=args.apns_team_id,
        apns_topic=args.apns_topic, apns_url=args.apns_url, apns_rate=args.apns_rate,
        ca_file=args.ca_file).channels()
    options = DeliveryOptions(lanes=args.lanes, visibility_timeout=args.visibility_timeout,
                              in_flight=args.in_flight,
                              hold_unknown=frozenset(args.hold_unknown))
    print(f"conveyor notify worker: channels {', '.join(sorted(channels))}", flush=True)
    counts = asyncio.run(run_worker(args.database, channels, args.templates, options,
                                    args.seconds))
    print(json.dumps(counts))
    return 0


def _status(args: argparse.Namespace) -> int:
    async def run(broker: object) -> object:
        return await broker.ledger.get(args.delivery_id)  # type: ignore[attr-defined]

    row = asyncio.run(with_broker(args.database, run))
    if row is None:
        print(f"conveyor: no notification {args.delivery_id!r}", file=sys.stderr)
        return 1
    print(json.dumps({k: getattr(row, k) for k in row.__slots__}))  # type: ignore[attr-defined]
    return 0


def _counts(args: argparse.Namespace) -> int:
    async def run(broker: object) -> object:
        ledger = broker.ledger  # type: ignore[attr-defined]
        return {"counts": await ledger.counts(args.channel),
                "resent_after_crash": await ledger.resent(args.channel)}

    try:
        found = asyncio.run(with_broker(args.database, run))
    except InvalidInput as exc:
        # An unknown --channel is a usage error, as `notify send --channel fax` is to
        # argparse (whose choices cannot name the channels an application added).
        print(f"conveyor notify counts: error: {exc.message}", file=sys.stderr)
        return 2
    print(json.dumps(found))
    return 0
