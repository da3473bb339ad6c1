"""`conveyor`: argument parsing, then configuration, then one command. No queue logic here.

Flags override `CONVEYOR_*` variables, which override the defaults (`conveyor.config`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace

import conveyor
from conveyor.cli import (
    commands,
    demo,
    job_commands,
    key_commands,
    notify,
    recipient_commands,
    template_commands,
    transfer,
    worker,
    workers,
)
from conveyor.client import Client
from conveyor.config import (
    DEFAULT_URL,
    ClientConfig,
    Config,
    client_from_env,
    from_env,
)
from conveyor.errors import ConveyorError, InvalidInput

BROKEN_PIPE = 141
"""The exit status when stdout's reader closed it early: a shell's for a SIGPIPE death."""

ClientCommand = Callable[[argparse.Namespace, Client], int]


def build_parser() -> argparse.ArgumentParser:
    """The whole command line."""
    parser = argparse.ArgumentParser(
        prog="conveyor", description="A self-hosted message queue: server and client.")
    parser.add_argument("--version", action="version", version=conveyor.__version__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _serve_parser(sub)
    migrate = sub.add_parser("migrate", help="create or upgrade the database schema")
    migrate.add_argument("--database", metavar="URL",
                         help="sqlite:///file.db or postgresql://... (default: embedded)")
    migrate.set_defaults(run=_migrate)
    _client_parsers(sub)
    transfer.add_parsers(sub)
    worker.add_parser(sub)
    demo.add_parser(sub)
    notify.add_parsers(sub)
    key_commands.add_parsers(sub)
    recipient_commands.add_parsers(sub)
    template_commands.add_parsers(sub)
    return parser


def _serve_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = sub.add_parser("serve", help="run the HTTP API (and the SQS endpoint)")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="native API port (default 8600; 0: any)")
    serve.add_argument("--database", metavar="URL",
                       help="sqlite:///file.db or postgresql://... (default: embedded SQLite)")
    serve.add_argument("--workers", type=int, help="server processes (default 1)")
    serve.add_argument("--region", help="region of the queues (default us-east-1)")
    serve.add_argument("--sqs-port", type=int, help="SQS endpoint port (default 9324)")
    serve.add_argument("--sqs-account-id", help="account id in SQS queue URLs")
    serve.add_argument("--no-sqs", action="store_true",
                       help="do not serve the SQS endpoint")
    serve.add_argument("--sqs-relaxed", action="store_true",
                       help="lift AWS's 60 s waits after PurgeQueue and DeleteQueue "
                            "(PurgeQueueInProgress, QueueDeletedRecently), for test suites")
    serve.add_argument("--log-format", choices=("text", "json"),
                       help="log lines as text or JSON objects (default text)")
    serve.add_argument("--tls-cert", metavar="PEM", help="serve HTTPS with this certificate")
    serve.add_argument("--tls-key", metavar="PEM", help="the certificate's private key")
    serve.add_argument("--max-in-flight", type=int, metavar="N",
                       help="leased messages per queue before OverLimit (default 120000)")
    serve.add_argument("--max-depth", type=int, metavar="N",
                       help="messages per queue before sends get OverLimit (default none)")
    serve.add_argument("--allowed-host", action="append", metavar="NAME",
                       help="a Host name, beyond loopback ones, that a server without API "
                            "keys answers (repeatable; guards against DNS rebinding)")
    serve.add_argument("--templates", metavar="DIR",
                       help="the delivery workers' file templates: a notification naming "
                            "one neither stored nor here is refused (404)")
    serve.add_argument("--sqs-credentials", metavar="AKID:SECRET,...",
                       help=argparse.SUPPRESS)  # retired: refused with a pointer to keys
    serve.set_defaults(run=_serve)


def _common_options(output: str) -> argparse.ArgumentParser:
    # A parent's actions are shared by every parser made from it, so a command with another
    # default output (receive: JSON lines, which scripts read) needs a parent of its own.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help=f"server URL (default {DEFAULT_URL}; CONVEYOR_URL)")
    common.add_argument("-o", "--output", choices=("table", "json"), default=output,
                        help=f"tables and sentences for people, or JSON lines (default "
                             f"{output})")
    return common


def _client_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = _common_options("table")

    queue = sub.add_parser("queue", help="create, list, inspect and manage queues")
    queue_sub = queue.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = queue_sub.add_parser("create", parents=[common], help="create a queue",
                                  epilog=commands.attributes_epilog(),
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    create.add_argument("name")
    create.add_argument("--attr", action="append", type=commands.parse_attr,
                        metavar="NAME=VALUE", help="a queue attribute (repeatable)")
    create.set_defaults(client=commands.queue_create)
    listing = queue_sub.add_parser("list", parents=[common], help="list queues with counts")
    listing.add_argument("--prefix", default="")
    listing.set_defaults(client=commands.queue_list)
    for action, run, text in (
            ("stats", commands.queue_stats, "a queue's attributes and counts"),
            ("delete", commands.queue_delete, "delete a queue and its messages"),
            ("purge", commands.queue_purge, "delete every message of a queue"),
            ("pause", commands.queue_pause, "stop deliveries (sends are still accepted)"),
            ("resume", commands.queue_pause, "resume deliveries")):
        parser = queue_sub.add_parser(action, parents=[common], help=text)
        parser.add_argument("name")
        parser.set_defaults(client=run, resume=action == "resume")

    send = sub.add_parser("send", parents=[common], help="send a message")
    send.add_argument("queue")
    send.add_argument("body", metavar="BODY", help="the message text ('-': read stdin)")
    send.add_argument("--json", action="store_true", help="BODY is a JSON value")
    send.add_argument("--delay", type=int, metavar="SECONDS")
    send.add_argument("--priority", type=int, metavar="0-9")
    send.add_argument("--dedup-id", metavar="ID")
    send.add_argument("--group-id", metavar="ID")
    send.add_argument("--attr", action="append", type=commands.parse_attr,
                      metavar="NAME=VALUE", help="a message attribute (repeatable)")
    send.set_defaults(client=commands.send)

    receive = sub.add_parser("receive", parents=[_common_options("json")],
                             help="receive messages (JSON lines; -o table for people)")
    receive.add_argument("queue")
    receive.add_argument("--max", type=int, default=10, metavar="N")
    receive.add_argument("--wait", type=int, metavar="SECONDS", help="long-poll up to 20 s")
    receive.add_argument("--visibility", type=int, metavar="SECONDS", help="lease length")
    receive.add_argument("--delete", action="store_true", help="acknowledge what was received")
    receive.set_defaults(client=commands.receive)

    redrive = sub.add_parser(
        "redrive", parents=[common], help="move a dead-letter queue's messages back",
        description="Move the messages of a dead-letter queue back to the queues they "
        "failed in (each to its own source), or all to --destination, as a move task "
        "(SQS's StartMessageMoveTask): their ids and bodies kept, receive counts reset. "
        "A FIFO queue's go back in order, with their groups; a standard queue's cannot "
        "go into a FIFO queue.")
    redrive.add_argument("queue", metavar="DLQ", help="the dead-letter queue to empty")
    redrive.add_argument("--destination", metavar="QUEUE",
                         help="move them all here instead of to their sources")
    redrive.add_argument("--max-per-second", type=int, metavar="N",
                         help="move at most N messages a second (default: as fast as it "
                         "can)")
    redrive.add_argument("--no-wait", dest="wait", action="store_false",
                         help="return at once with the running task (default: wait and "
                         "print how many moved)")
    redrive.set_defaults(client=commands.redrive)

    job = sub.add_parser("job", help="tracked jobs' status (tasks with track=True)")
    job_sub = job.add_subparsers(dest="action", required=True, metavar="ACTION")
    status = job_sub.add_parser("status", parents=[common],
                                help="a job's status, attempts, last error and result")
    status.add_argument("job_id", metavar="JOB_ID")
    status.set_defaults(client=commands.job_status)
    counts = job_sub.add_parser("counts", parents=[common], help="jobs in each status")
    counts.add_argument("--queue", help="one queue's jobs (default: all)")
    counts.set_defaults(client=commands.job_counts)
    listing = job_sub.add_parser("list", parents=[common],
                                 help="tracked jobs, newest update first, by filter")
    listing.add_argument("--state", help="queued, running, retrying, succeeded, failed, "
                                          "dead or cancelled")
    listing.add_argument("--task", help="one task's jobs")
    listing.add_argument("--queue", help="one queue's jobs")
    listing.add_argument("--key", help="one key's jobs (per-key value or unique key)")
    for flag, what in (("--created-since", "enqueued at or after"),
                       ("--created-until", "enqueued before"),
                       ("--updated-since", "updated at or after"),
                       ("--updated-until", "updated before")):
        listing.add_argument(flag, type=job_commands.moment, metavar="TIME",
                             help=f"{what} TIME (ms since the epoch or ISO 8601)")
    listing.add_argument("--limit", type=int, default=50, help="jobs to show (default 50)")
    listing.add_argument("--after", metavar="CURSOR", help="the next page (printed as more:)")
    listing.set_defaults(client=job_commands.job_list)
    show = job_sub.add_parser("show", parents=[common], help="a job's arguments, attempts "
                              "with errors and tracebacks, result and timeline")
    show.add_argument("job_id", metavar="JOB_ID")
    show.set_defaults(client=job_commands.job_show)
    retry = job_sub.add_parser("retry", parents=[common],
                               help="send a dead or failed job again under its id")
    retry.add_argument("job_id", metavar="JOB_ID")
    retry.set_defaults(client=job_commands.job_retry)
    forget = job_sub.add_parser("delete", parents=[common],
                                help="forget an ended job (and its dead-letter message)")
    forget.add_argument("job_id", metavar="JOB_ID")
    forget.set_defaults(client=job_commands.job_delete)
    job_commands.add_cancel_parser(job_sub, common)

    workers.add_parser(sub, common)


# commands ---------------------------------------------------------------------------
def server_config(args: argparse.Namespace) -> Config:
    """The environment's configuration with the given flags on top."""
    config = from_env()
    server = replace(config.server, host=args.host or config.server.host,
                     port=config.server.port if args.port is None else args.port,
                     workers=config.server.workers if args.workers is None else args.workers,
                     tls_cert=args.tls_cert or config.server.tls_cert,
                     tls_key=args.tls_key or config.server.tls_key,
                     max_in_flight=args.max_in_flight or config.server.max_in_flight,
                     max_depth=args.max_depth or config.server.max_depth,
                     allowed_hosts=tuple(args.allowed_host or config.server.allowed_hosts),
                     templates=args.templates or config.server.templates)
    sqs = replace(config.sqs, enabled=config.sqs.enabled and not args.no_sqs,
                  port=config.sqs.port if args.sqs_port is None else args.sqs_port,
                  account_id=args.sqs_account_id or config.sqs.account_id,
                  credentials=args.sqs_credentials or config.sqs.credentials,
                  relaxed=config.sqs.relaxed or args.sqs_relaxed)
    return replace(config, server=server, sqs=sqs,
                   database_url=args.database or config.database_url,
                   region=args.region or config.region,
                   log_json=config.log_json if args.log_format is None
                   else args.log_format == "json")


def _serve(args: argparse.Namespace) -> int:
    from conveyor.cli.serve import run_serve

    return run_serve(server_config(args))


def _migrate(args: argparse.Namespace) -> int:
    from conveyor.cli.serve import database_url, migrate

    url = database_url(replace(from_env(), database_url=args.database or None))
    applied, known = migrate(url)
    print(f"schema at version {applied} of {known}")
    return 0


def _client_config(args: argparse.Namespace) -> ClientConfig:
    config = client_from_env()
    return replace(config, url=args.url) if args.url else config


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; exit status 0 on success, 1 with the server's message on failure."""
    args = build_parser().parse_args(argv)
    try:
        client: ClientCommand | None = getattr(args, "client", None)
        if client is not None:
            config = _client_config(args)
            with Client(config.url, timeout=config.timeout, api_key=config.api_key) as api:
                return client(args, api)
        run: Callable[[argparse.Namespace], int] = args.run
        return run(args)
    except ConveyorError as exc:
        index = exc.index if isinstance(exc, InvalidInput) else None
        where = f" (entry {index})" if index is not None else ""
        print(f"conveyor: error: {exc.message}{where} [{exc.code}]", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader went away (`conveyor receive q | head -1`): not an error to report.
        # What Python would still flush at exit goes nowhere instead of a second traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return BROKEN_PIPE
    except OSError as exc:
        print(f"conveyor: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
