"""An App for the cancel and per-key process tests: URL and output file from the environment."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from conveyor.worker import App, current_job

app = App(os.environ.get("TEST_CONVEYOR_URL"),
          visibility_timeout=int(os.environ.get("TEST_LEASE", "30")))
OUT = Path(os.environ.get("TEST_OUT", "out.txt"))


def note(*parts: object) -> None:
    """One line per event; O_APPEND keeps lines of many processes whole."""
    with OUT.open("a") as out:
        out.write(" ".join(str(p) for p in (os.getpid(), time.time(), *parts)) + "\n")


@app.task(queue="steer-async", concurrency=5, track=True)
async def wait_async(i: int) -> None:
    """Waits a long time, unless cancelled."""
    note("started", i)
    try:
        await asyncio.sleep(600)
    except asyncio.CancelledError:
        note("cancelled", i)
        raise
    note("done", i)


@app.task(queue="steer-sync", concurrency=5, track=True)
def wait_sync(i: int) -> None:
    """Works in steps, honouring a cancel between them."""
    note("started", i)
    job = current_job()
    assert job is not None
    for _ in range(6000):
        if job.cancelled:
            note("saw-cancel", i)
        job.raise_if_cancelled()
        time.sleep(0.1)
    note("done", i)


def _key(key: str, i: int) -> str:
    return key


@app.task(queue="steer-keyed", concurrency=20, concurrency_key=_key, key_concurrency=2)
async def keyed(key: str, i: int) -> None:
    """Takes a while, noting when it began and ended."""
    note("begin", key, i)
    await asyncio.sleep(float(os.environ.get("TEST_JOB_SECONDS", "0.1")))
    note("end", key, i)


@app.task(queue="steer-keyed-hang", concurrency=5, concurrency_key=_key, key_concurrency=1)
async def keyed_hang(key: str, i: int) -> None:
    """Hangs on job 0's first run (until killed, holding its key's one slot)."""
    marker = OUT.with_name(f"keyed-started-{i}")
    if i == 0 and not marker.exists():
        marker.touch()
        note("hang", key, i)
        await asyncio.sleep(3600)
    note("end", key, i)
