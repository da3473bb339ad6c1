"""The README's flows: a chain, a chord and a parent with children, run by a worker here.

    cd examples/quickstart
    python flows.py

Its own database file, `quickstart-flows.db` in the working directory
(CONVEYOR_EXAMPLE_DATABASE to use another).
"""

from __future__ import annotations

import asyncio
import os

from conveyor import App
from conveyor.worker import chain, chord, group

app = App(os.environ.get("CONVEYOR_EXAMPLE_DATABASE", "sqlite:///quickstart-flows.db"))


@app.task(queue="flows")
def fetch(page: int) -> str:
    return f"page {page} " * page


@app.task(queue="flows")
def count(text: str) -> int:
    return len(text.split())


@app.task(queue="flows")
def total(counts: list[int | None]) -> int:
    return sum(c or 0 for c in counts)


@app.task(queue="flows", max_retries=0)
def flaky(page: int) -> int:
    raise RuntimeError(f"page {page} is gone")


async def main() -> None:
    """Send three flows, run a worker until each has its result, print them."""
    from conveyor.worker.runner import Worker, WorkerOptions

    one = await chain(fetch.s(3), count.s()).aenqueue()
    many = await chord(group(chain(fetch.s(p), count.s()) for p in (1, 2, 3)),
                       total.s()).aenqueue()
    parent = await app.flow(total.s(), children=[
        chain(fetch.s(4), count.s()), flaky.s(5).set(on_failure="ignore")]).aenqueue()
    worker = Worker(app, WorkerOptions(wait_seconds=0, scheduler=False))
    running = asyncio.create_task(worker.run())
    for name, run in (("chain", one), ("chord", many), ("parent", parent)):
        print(name, await run.result(timeout=30), flush=True)
    worker.stop()
    await running
    await app.aclose()


if __name__ == "__main__":
    asyncio.run(main())
