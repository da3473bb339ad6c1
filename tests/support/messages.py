"""Small helpers for broker tests."""

from __future__ import annotations

from typing import Any

from conveyor.broker.broker import Broker
from conveyor.models import Body, Message, SendEntry


def entry(body: Any, **kwargs: Any) -> SendEntry:
    """A SendEntry for any JSON-able body (`str` stays text)."""
    return SendEntry(Body.of(body), **kwargs)


async def send(broker: Broker, queue: str, *bodies: Any, **kwargs: Any) -> list[str]:
    """Send bodies in one batch; returns their ids."""
    results = await broker.send(queue, [entry(b, **kwargs) for b in bodies])
    return [r.id for r in results]


async def receive_all(broker: Broker, queue: str, limit: int = 1000,
                      **kwargs: Any) -> list[Message]:
    """Receive until a receive comes back empty."""
    out: list[Message] = []
    while batch := await broker.receive(queue, max_messages=min(limit, 1000), **kwargs):
        out += batch
    return out


def bodies(messages: list[Message]) -> list[Any]:
    """The values the messages were sent with."""
    return [m.body.value() for m in messages]
