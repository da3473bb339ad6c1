"""An App for the heartbeat tests: a task that works, one that always fails (retried
once), and a schedule; its URL comes from the environment."""

from __future__ import annotations

import os

from conveyor.worker import App

app = App(os.environ.get("TEST_CONVEYOR_URL"))


@app.task(queue="beat-ok", concurrency=4, track=True)
async def fine(i: int) -> int:
    return i


@app.task(queue="beat-bad", concurrency=1, max_retries=1, retry_backoff=False, track=True)
async def broken(i: int) -> None:
    raise RuntimeError(f"broken {i}")


@app.cron(every=3600)
async def hourly() -> None:
    """Listed with its next run; never due during a test."""
