"""WonderQ producer: every 2 seconds, a few messages to one of three queues at random.

    python examples/wonderq/producer.py --url http://127.0.0.1:8600
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import QUEUES, Deadline, options

from conveyor import Client
from conveyor.models import Body, SendEntry


def main() -> int:
    args = options("Send messages to three queues at random.")
    rng = random.Random(args.seed)
    deadline = Deadline(args.duration)
    number = 0
    with Client(args.url) as client:
        for queue in QUEUES:
            client.create_queue(queue, {"visibility_timeout": args.visibility})
        while not deadline.over():
            queue = rng.choice(QUEUES)
            count = rng.randint(1, 3)
            entries = [SendEntry(Body.of({"n": number + i, "queue": queue,
                                          "sent": round(time.time(), 3)}))
                       for i in range(count)]
            sent = client.send(queue, entries)
            number += count
            print(f"producer: sent {count} to {queue}: "
                  f"{', '.join(s.id[-12:] for s in sent)}", flush=True)
            time.sleep(args.interval)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
