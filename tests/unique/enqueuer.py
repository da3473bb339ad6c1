"""Run as a process: enqueue one unique job `count` times from `threads` threads at once,
starting at a given wall time, and print each Job as `id duplicate`."""

from __future__ import annotations

import sys
import threading
import time

from conveyor.worker import App, Unique

url, start_at, count = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
app = App(url)


@app.task(queue="uniq", unique=Unique(by_args=True))
def report(day: str) -> None:
    """A unique task (never run here)."""


report.enqueue("warm-up")  # open the source and create the queue before the race
time.sleep(max(0.0, start_at - time.time()))
lines: list[str] = []
lock = threading.Lock()


def send() -> None:
    for _ in range(count):
        job = report.enqueue("2026-12-05")
        with lock:
            lines.append(f"{job.id} {int(job.duplicate)}")


threads = [threading.Thread(target=send) for _ in range(2)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
app.close()
print("\n".join(lines), flush=True)
