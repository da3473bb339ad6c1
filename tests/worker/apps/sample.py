"""An App for the process tests: its URL and output file come from the environment."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from conveyor.worker import App

app = App(os.environ.get("TEST_CONVEYOR_URL"),
          visibility_timeout=int(os.environ.get("TEST_LEASE", "30")))
OUT = Path(os.environ.get("TEST_OUT", "out.txt"))


def note(*parts: object) -> None:
    """One line per event; O_APPEND keeps lines of many processes whole."""
    with OUT.open("a") as out:
        out.write(" ".join(str(p) for p in (os.getpid(), time.time(), *parts)) + "\n")


@app.task(queue="plain", concurrency=20)
async def record(i: int) -> None:
    note("done", i)


@app.task(queue="hang", concurrency=10)
async def hang(i: int) -> None:
    """Hangs on its first run (until killed), completes on the next."""
    marker = OUT.with_name(f"started-{i}")
    if not marker.exists():
        marker.touch()
        note("started", i)
        await asyncio.sleep(3600)
    note("done", i)


@app.task(queue="slow", concurrency=10)
async def slow(i: int) -> None:
    note("started", i)
    await asyncio.sleep(float(os.environ.get("TEST_SLOW", "1")))
    note("done", i)


@app.task(queue="limited", rate_limit="20/1s", concurrency=5)
async def limited(i: int) -> None:
    note("done", i)


@app.task(queue="busy", concurrency=1)
async def busy(i: int) -> None:
    await asyncio.sleep(0.05)
    note("done", i)
