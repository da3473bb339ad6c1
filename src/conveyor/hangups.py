"""Noticing that an HTTP client has gone while its long poll waits.

A server does not learn of a closed connection unless it reads from it, and Starlette does
not cancel a handler whose client left. A long poll whose client was killed, froze, or
stopped (a worker's clean shutdown abandons its poll) would otherwise wait on and lease
messages to nobody: they came back only after their visibility timeout, a receive spent,
and with `max_receive_count` 1 went to the dead-letter queue unrun (an outside fault probe:
5 of 5 messages). `hangup` reads the request's ASGI channel beside the handler; the broker's
long poll stops waiting and leases nothing more once the event is set
(`Broker.receive(abandoned=...)`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

__all__ = ["hangup"]


@contextlib.asynccontextmanager
async def hangup(receive: Callable[[], Awaitable[Any]]) -> AsyncIterator[asyncio.Event]:
    """An event set when the client disconnects, for the length of the block. Use it after
    the request body has been read (what it reads then is only the disconnect)."""
    gone = asyncio.Event()

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass  # more body: the handler has read what it needs
        gone.set()

    task = asyncio.create_task(watch())
    try:
        yield gone
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task  # a channel that failed is a client gone too: nothing to wait for
