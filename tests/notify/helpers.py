"""Shared pieces of the notification tests: peers on loopback and a bounded delivery run."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable

from aiosmtpd.controller import Controller

from conveyor.demo.loopback import SmtpSink
from conveyor.notify import Deliverer, DeliveryOptions, Notifier

TEMPLATES = {
    "welcome.subject": "Welcome, {{ name }}",
    "welcome.txt": "Hi {{ name }},\nyour code is {{ code }}.\n.a line starting with a dot\n",
    "welcome.html": "<p>Hi {{ name }}</p>",
    "ping.txt": "ping {{ n }}",
}

FAST = DeliveryOptions(lanes=2, envelopes=4, visibility_timeout=30, wait_seconds=0,
                       backoff_base=1.0, backoff_max=1.0, max_attempts=3)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def smtp_server(sink: SmtpSink):  # type: ignore[no-untyped-def]
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


async def deliver_until(notifier: Notifier, done: Callable[[], bool], *,
                        clock_step: Callable[[], None] | None = None,
                        timeout: float = 20.0, options: DeliveryOptions = FAST
                        ) -> Deliverer:
    """Run a delivery worker until `done()` (advancing a test clock if given)."""
    deliverer = notifier.deliverer(options)
    task = asyncio.create_task(deliverer.run())
    try:
        async with asyncio.timeout(timeout):
            while not done():
                await asyncio.sleep(0.05)
                if clock_step is not None:
                    clock_step()
                if task.done():
                    task.result()
    finally:
        deliverer.stop()
        await task
    return deliverer


@contextlib.asynccontextmanager
async def opened(notifier: Notifier) -> AsyncIterator[Notifier]:
    async with notifier:
        yield notifier
