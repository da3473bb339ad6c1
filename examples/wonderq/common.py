"""What the WonderQ producer and consumer share: the queues, options, and a stop clock."""

from __future__ import annotations

import argparse
import os
import time

QUEUES = ("wonder-a", "wonder-b", "wonder-c")
VISIBILITY_SECONDS = 3  # a slow job (see consumer.py) outlasts this and is redelivered


def options(description: str) -> argparse.Namespace:
    """--url, --interval and --duration (seconds; 0 runs until Ctrl-C)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--url", default=os.environ.get("CONVEYOR_URL",
                                                        "http://127.0.0.1:8600"))
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between rounds")
    parser.add_argument("--duration", type=float, default=0.0, help="stop after this long")
    parser.add_argument("--visibility", type=int, default=VISIBILITY_SECONDS,
                        help="the queues' visibility timeout in seconds")
    parser.add_argument("--seed", type=int, default=None, help="make the randomness repeat")
    return parser.parse_args()


class Deadline:
    """Whether a run of `duration` seconds (0: forever) is over."""

    def __init__(self, duration: float) -> None:
        self.end = time.monotonic() + duration if duration > 0 else None

    def over(self) -> bool:
        return self.end is not None and time.monotonic() >= self.end
