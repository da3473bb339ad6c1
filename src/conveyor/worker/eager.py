"""Start a job's coroutine at once; make a Task only if it has to wait.

Most of a worker's per-job cost for short jobs is the asyncio Task each job gets: its
creation, its first scheduling and the loop turn it costs. A job that finishes without
waiting (a no-op, a cache hit, a CPU-bound step) needs none of that. Python 3.12's
`asyncio.eager_task_factory` does exactly this; on 3.11 `start` drives the coroutine's first
step itself and hands the rest to a Task that resumes it where it stopped, the same
protocol asyncio's Task follows (a coroutine yields the Future it waits for, or None to
give the loop a turn).
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
from collections.abc import Coroutine
from typing import Any

_EAGER_FACTORY = getattr(asyncio, "eager_task_factory", None)


def start(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None] | None:
    """Run `coro` until it first waits, in a context of its own (as a Task would).

    Returns None when it finished right away, else the Task that carries it on. Its
    exceptions surface where a Task's would: from the Task, or here when it fails at once.
    """
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()
    if _EAGER_FACTORY is not None and sys.version_info >= (3, 12):  # pragma: no cover
        task: asyncio.Task[None] = _EAGER_FACTORY(loop, coro, context=context)
        if task.done():
            task.result()
            return None
        return task
    try:
        waiting = context.run(coro.send, None)
    except StopIteration:
        return None
    return loop.create_task(_resume(coro, waiting), context=context)


async def _resume(coro: Coroutine[Any, Any, None], waiting: Any) -> None:
    """Carry on a coroutine that stopped at `waiting` (what it yielded)."""
    while True:
        try:
            if waiting is None:
                await asyncio.sleep(0)
            else:
                waiting._asyncio_future_blocking = False
                await waiting
        except BaseException as exc:
            try:
                waiting = coro.throw(exc)
            except StopIteration:
                return
            continue
        try:
            waiting = coro.send(None)
        except StopIteration:
            return
