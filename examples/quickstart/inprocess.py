"""The README's in-process example: the broker as a library, no server.

    python examples/quickstart/inprocess.py      # writes inprocess-example.db here
"""

import asyncio

from conveyor import Body, Broker, SendEntry
from conveyor.storage.factory import storage_from_url


async def main() -> None:
    async with Broker(storage_from_url("sqlite:///inprocess-example.db")) as broker:
        await broker.create_queue("reminders", {"visibility_timeout": 60})
        await broker.send("reminders", [SendEntry(Body.of({"to": "ada@example.com"}))])

        for message in await broker.receive("reminders", max_messages=10, wait_seconds=5):
            print("reminding", message.body.value()["to"])
            await broker.delete("reminders", [message.receipt_handle])  # acknowledge


asyncio.run(main())
