"""`conveyor keys create|list|revoke`: API keys, straight in the database (like `migrate`)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import replace
from datetime import UTC, datetime

from conveyor.broker.api_keys import ApiKeys
from conveyor.broker.broker import Broker
from conveyor.config import from_env
from conveyor.errors import InvalidInput
from conveyor.keys import ApiKey, parse_grants
from conveyor.sealing import sealer_from
from conveyor.storage.factory import storage_from_url


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `conveyor keys`."""
    keys = sub.add_parser("keys", help="create, list and revoke API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="COMMAND")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--database", metavar="URL",
                        help="sqlite:///file.db or postgresql://... (default: as serve)")
    create = keys_sub.add_parser(
        "create", parents=[common], help="make a key and print its token (shown once)")
    create.add_argument("name", help="a name for the key (who or what uses it)")
    create.add_argument("--allow", action="append", required=True, metavar="ACTIONS[:PATTERN]",
                        help="e.g. 'send,receive:orders-*' or 'manage' (every queue); "
                             "repeat for more grants")
    create.add_argument("--access-key-id", metavar="AKID",
                        help="bring an existing SQS key pair in: its access key id becomes "
                             "the key's id (with --secret-stdin)")
    create.add_argument("--secret-stdin", action="store_true",
                        help="read the pair's secret (the key's token) from stdin")
    create.set_defaults(run=_create)
    listing = keys_sub.add_parser("list", parents=[common], help="list keys (not tokens)")
    listing.set_defaults(run=_list)
    revoke = keys_sub.add_parser("revoke", parents=[common], help="revoke a key by name or id")
    revoke.add_argument("name")
    revoke.set_defaults(run=_revoke)


async def _with_keys(args: argparse.Namespace) -> tuple[Broker, ApiKeys]:
    from conveyor.cli.serve import database_url

    config = from_env()
    sealer = sealer_from(config.keys_secret)  # a bad CONVEYOR_KEYS_SECRET fails first
    url = database_url(replace(config, database_url=args.database or None))
    broker = Broker(storage_from_url(url), sweep_interval=None)
    await broker.start()
    return broker, ApiKeys(broker, sealer=sealer)


def _create(args: argparse.Namespace) -> int:
    grants = parse_grants(args.allow)
    if args.secret_stdin != (args.access_key_id is not None):
        raise InvalidInput("--access-key-id and --secret-stdin go together.",
                           field="access_key_id")
    secret = sys.stdin.readline().strip() if args.secret_stdin else None

    async def run() -> tuple[ApiKey, str]:
        broker, keys = await _with_keys(args)
        try:
            return await keys.create(args.name, grants, access_key_id=args.access_key_id,
                                     secret=secret)
        finally:
            await broker.close()

    key, token = asyncio.run(run())
    if secret is None:
        print(token)
    print(f"conveyor: key {args.name!r} may {'; '.join(str(g) for g in grants)}. Send the "
          "token as `Authorization: Bearer TOKEN`; on the SQS endpoint sign with access key "
          f"id {key.id} and the token as secret access key."
          + ("" if secret else " The token is shown only now."), file=sys.stderr)
    return 0


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def format_keys(keys: list[ApiKey]) -> list[str]:
    """One line a key: name, id, grants, created, revoked."""
    lines = [f"{'NAME':<24} {'ID':<32} {'CREATED':<20} {'REVOKED':<20} GRANTS"]
    for key in keys:
        lines.append(f"{key.name:<24} {key.id:<32} {_when(key.created_at):<20} "
                     f"{_when(key.revoked_at):<20} {' '.join(str(g) for g in key.grants)}")
    return lines


def _list(args: argparse.Namespace) -> int:
    async def run() -> list[ApiKey]:
        broker, keys = await _with_keys(args)
        try:
            return await keys.list()
        finally:
            await broker.close()

    print("\n".join(format_keys(asyncio.run(run()))))
    return 0


def _revoke(args: argparse.Namespace) -> int:
    async def run() -> int:
        broker, keys = await _with_keys(args)
        try:
            return await keys.revoke(args.name)
        finally:
            await broker.close()

    if asyncio.run(run()) == 0:
        print(f"conveyor: error: no active key named {args.name!r}",
              file=sys.stderr)
        return 1
    print(f"revoked {args.name}")
    return 0


async def active_keys(url: str) -> int:
    """How many API keys a database has had (for serve's warning)."""
    broker = Broker(storage_from_url(url), sweep_interval=None)
    await broker.start()
    try:
        return await ApiKeys(broker).storage_count()
    finally:
        await broker.close()


def warn_if_open(url: str, host: str) -> None:
    """Say how the API is protected on a public address."""
    from conveyor.cli.serve import say
    from conveyor.forgery import is_loopback

    if is_loopback(host):
        return
    if asyncio.run(active_keys(url)) == 0:
        say(f"WARNING: listening on {host}, a public address, with no API keys: every "
            "request to the native API and the SQS endpoint will be refused. Create one with "
            "`conveyor keys create NAME --allow send,receive,manage`.")
