"""An App for the flow process tests: a chord's children and its callback. The URL, the
lease and the output file come from the environment."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from conveyor.worker import App

app = App(os.environ.get("TEST_CONVEYOR_URL"),
          visibility_timeout=int(os.environ.get("TEST_LEASE", "30")))
OUT = Path(os.environ.get("TEST_OUT", "out.txt"))
CHILD_SECONDS = float(os.environ.get("TEST_CHILD_SECONDS", "0.01"))


def note(*parts: object) -> None:
    """One line per event; O_APPEND keeps lines of many processes whole."""
    with OUT.open("a") as out:
        out.write(" ".join(str(p) for p in (os.getpid(), time.time(), *parts)) + "\n")


@app.task(queue="chord-children", concurrency=20)
async def child(i: int) -> int:
    await asyncio.sleep(CHILD_SECONDS)
    note("child", i)
    return i


@app.task(queue="chord-callback", concurrency=1)
async def callback(values: list[int]) -> int:
    note("callback", len(values), sum(values))
    return sum(values)
