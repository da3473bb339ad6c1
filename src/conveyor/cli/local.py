"""What the commands that work on a database directly (not through a server) share."""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from conveyor.broker.broker import Broker

T = TypeVar("T")


def json_object(text: str) -> dict[str, Any]:
    """An argparse type: a JSON object given on the command line."""
    try:
        value = json.loads(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not JSON") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("a JSON object, {...}")
    return value


async def with_broker(url: str | None, fn: Callable[[Broker], Awaitable[T]]) -> T:
    """Run `fn` on a broker opened on `url` (no retention sweep), then close it."""
    from conveyor.broker.broker import Broker
    from conveyor.storage.factory import storage_from_url

    async with Broker(storage_from_url(url), sweep_interval=None) as broker:
        return await fn(broker)
