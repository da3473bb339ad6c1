"""The README's job-queue example: an app with one task, a producer and a worker.

    cd examples/quickstart
    python tasks.py                              # enqueue three jobs, run a worker until done
    conveyor worker tasks:app                    # or run a worker on its own (Ctrl-C stops it)

Its own database file, `quickstart-jobs.db` in the working directory (so run both from the
same one; CONVEYOR_EXAMPLE_DATABASE to use another), so its `emails` queue meets no other
example's messages.
"""

from __future__ import annotations

import asyncio
import os

from conveyor import App

app = App(os.environ.get("CONVEYOR_EXAMPLE_DATABASE", "sqlite:///quickstart-jobs.db"))


@app.task(queue="emails", rate_limit="300/m", max_retries=5, timeout=30)
async def send_welcome(user_id: int, email: str) -> None:
    """The slow part of a sign-up, done after the web request has answered."""
    print(f"welcome mail to user {user_id} <{email}>", flush=True)


async def main() -> None:
    """Enqueue three jobs, then work until the queue is empty."""
    from conveyor.worker.runner import Worker, WorkerOptions

    for user_id in (1, 2, 3):
        await send_welcome.aenqueue(user_id, f"user{user_id}@example.com")
    worker = Worker(app, WorkerOptions(wait_seconds=0, scheduler=False))
    running = asyncio.create_task(worker.run())
    source = await app.source()
    while (await source.queue_stats("emails")).total:  # noqa: ASYNC110 - the queue is remote
        await asyncio.sleep(0.05)
    worker.stop()
    await running
    await app.aclose()


if __name__ == "__main__":
    asyncio.run(main())
