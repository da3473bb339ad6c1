"""An App for the kill tests of cron ticks and last attempts: URL, output file and the
faults to inject come from the environment (a worker process is killed where they hold it).
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from conveyor.worker import App, Middleware, cron
from conveyor.worker.task import JobCall, Received

OUT = Path(os.environ.get("TEST_OUT", "out.txt"))
# A lease short enough for a test to see a killed scheduler's tick taken over.
cron.LEASE = float(os.environ.get("TEST_CRON_LEASE", cron.LEASE))


def note(*parts: object) -> None:
    """One line per event; O_APPEND keeps lines of many processes whole."""
    with OUT.open("a") as out:
        out.write(" ".join(str(p) for p in (os.getpid(), time.time(), *parts)) + "\n")


class Faults(Middleware):
    """TEST_HANG_SEND=1: a cron tick's send hangs after its claim (until killed); every
    job run is noted with its deduplication id (a cron job's names its tick)."""

    async def before_enqueue(self, app: App, call: JobCall) -> None:
        """Note the claimed tick; hang there when told to."""
        if call.deduplication_id and call.deduplication_id.startswith("cron-"):
            note("claimed", call.deduplication_id)
            if os.environ.get("TEST_HANG_SEND") == "1":
                await asyncio.sleep(3600)

    async def before_process(self, app: App, job: Received) -> None:
        """Note the run."""
        note("ran", job.message.deduplication_id or job.id)


app = App(os.environ.get("TEST_CONVEYOR_URL"),
          visibility_timeout=int(os.environ.get("TEST_LEASE", "30")),
          middleware=[Faults()])


@app.cron(every=2, queue="crashy-cron")
def every_two_seconds() -> None:
    """A cron job: its runs are noted by the middleware."""


@app.task(queue="crashy-final", max_retries=0, track=True)
async def last_chance(i: int) -> None:
    """Runs once (max_receive_count 1): hangs until its worker is killed."""
    note("started", i)
    await asyncio.sleep(3600)
