"""WonderQ consumer: every 2 seconds, read each of the three queues; some jobs are slow.

Jobs run on a few threads while the reading goes on. A slow job takes longer than the
queue's visibility timeout, so its lease lapses, the next read gets the message again (the
output says REDELIVERED, with its receive count), and the slow job's late acknowledgement
is refused as stale. Watch it on the dashboard too (in flight, rates).

    python examples/wonderq/consumer.py --url http://127.0.0.1:8600
"""

from __future__ import annotations

import random
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import QUEUES, Deadline, options

from conveyor import Client
from conveyor.models import Message

SLOW_CHANCE = 0.3
_print = threading.Lock()


def say(text: str) -> None:
    """One whole line at a time (jobs print from several threads)."""
    with _print:
        print(f"consumer: {text}", flush=True)


def work(client: Client, message: Message, slow: float, visibility: int) -> None:
    """Handle one message; a slow one sleeps `slow` seconds, past its lease, first."""
    label = f"{message.queue} #{message.body.value()['n']} ({message.id[-12:]})"
    if message.receive_count > 1:
        say(f"REDELIVERED {label}, receive count {message.receive_count}")
    if slow:
        say(f"slow job {label}: longer than the {visibility}s lock")
        time.sleep(slow)
    [result] = client.delete(message.queue, [message.receipt_handle])
    if result.ok:
        say(f"done {label}")
    else:
        say(f"too late for {label}: the lock lapsed ({result.status})")


def main() -> int:
    args = options("Read three queues; sometimes take longer than the lock.")
    rng = random.Random(args.seed)
    deadline = Deadline(args.duration)
    # Past the lock, and past the next read, so the redelivery comes before the late ack.
    slow_seconds = args.visibility + args.interval + 0.5
    with Client(args.url) as client, ThreadPoolExecutor(8) as jobs:
        for queue in QUEUES:
            client.create_queue(queue, {"visibility_timeout": args.visibility})
        while not deadline.over():
            for queue in QUEUES:
                for message in client.receive(queue, max_messages=5):
                    slow = slow_seconds if rng.random() < SLOW_CHANCE else 0.0
                    jobs.submit(work, client, message, slow, args.visibility)
            time.sleep(args.interval)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
