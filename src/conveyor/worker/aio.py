"""The run loop's small asyncio helpers: a receive that a stop ends, the first of several
waits, cleanup that logs instead of raising."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

from conveyor.models import Message

__all__ = ["first", "quietly", "unless_stopped"]

log = logging.getLogger("conveyor.worker")


async def unless_stopped(receive: Awaitable[list[Message]], stopping: asyncio.Event
                          ) -> list[Message]:
    """The receive's messages, or none when the worker is stopped first (a long poll must
    not hold up shutdown; a receive cancelled mid-claim only delays those messages until
    their lease runs out)."""
    receiving = asyncio.ensure_future(receive)
    stopped = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait({receiving, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if not receiving.done():
        receiving.cancel()
        await asyncio.gather(receiving, return_exceptions=True)
        return []
    return receiving.result()


async def first(*aws: Any) -> None:
    """Wait for the first of some awaitables; cancel the rest."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def quietly(aw: Any) -> None:
    """Await `aw`; log an exception instead of raising it (cleanup that must go on)."""
    try:
        await aw
    except Exception:
        log.exception("ignored during job cleanup")
