"""An App for the dead-letter flow test: a child that SIGKILLs its own worker process on
every attempt, and the parents waiting for it. URL, lease and output file come from the
environment."""

from __future__ import annotations

import json
import os
import signal
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


@app.task(queue="doomed", max_retries=1)  # the queue's max_receive_count: 2
def doomed(policy: str) -> None:
    note("doomed", policy)
    os.kill(os.getpid(), signal.SIGKILL)  # kill -9 of this worker, mid-job


@app.task(queue="doomed-parents")
def parent(values: list[object], policy: str) -> str:
    note("parent", policy, json.dumps(values))
    return policy
