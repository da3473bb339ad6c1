"""The README's WebSocket example: messages pushed to a consumer as they arrive.

    conveyor serve                                   # native API on 127.0.0.1:8600
    python examples/quickstart/stream.py [SERVER_URL]
"""

import asyncio
import sys

from conveyor import Body, Client, SendEntry
from conveyor.client.stream import Stream


async def main(url: str = "http://127.0.0.1:8600") -> None:
    with Client(url) as client:
        client.create_queue("stream-hello")
        client.send("stream-hello", [SendEntry(Body.of(f"hello {i}")) for i in range(3)])

    async with Stream(url, "stream-hello", credits=10) as stream:
        for _ in range(3):
            message = await stream.receive(timeout=10)
            print("got", message.body.value())
            await stream.ack(message)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
