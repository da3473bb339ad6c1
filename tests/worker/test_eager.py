"""worker.eager.start: jobs that never wait get no Task; the others behave as in a Task."""

from __future__ import annotations

import asyncio
import contextvars

import pytest

from conveyor.worker import eager

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="outer")


async def test_a_coroutine_that_never_waits_needs_no_task() -> None:
    done: list[int] = []

    async def job() -> None:
        done.append(1)

    assert eager.start(job()) is None
    assert done == [1]


async def test_a_coroutine_that_waits_is_carried_on_by_a_task() -> None:
    steps: list[str] = []
    gate = asyncio.Event()

    async def job() -> None:
        steps.append("start")
        await asyncio.sleep(0)  # a bare yield
        steps.append("after yield")
        await gate.wait()  # a future
        steps.append("after wait")
        await asyncio.sleep(0.01)
        steps.append("end")

    task = eager.start(job())
    assert task is not None and steps == ["start"]
    await asyncio.sleep(0.01)
    assert steps == ["start", "after yield"]
    gate.set()
    await task
    assert steps == ["start", "after yield", "after wait", "end"]


async def test_results_and_exceptions_of_awaited_futures_reach_the_job() -> None:
    seen: list[object] = []
    loop = asyncio.get_running_loop()
    ok: asyncio.Future[int] = loop.create_future()
    bad: asyncio.Future[int] = loop.create_future()

    async def job() -> None:
        seen.append(await ok)
        try:
            await bad
        except KeyError as exc:
            seen.append(exc)

    task = eager.start(job())
    assert task is not None
    ok.set_result(7)
    await asyncio.sleep(0)
    bad.set_exception(KeyError("k"))
    await task
    assert seen[0] == 7 and isinstance(seen[1], KeyError)


async def test_cancelling_the_task_cancels_the_job_inside() -> None:
    events: list[str] = []

    async def job() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            events.append("cancelled inside")
            raise

    task = eager.start(job())
    assert task is not None
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert events == ["cancelled inside"]


async def test_an_exception_in_the_first_step_is_raised_at_once() -> None:
    async def job() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        eager.start(job())


async def test_context_changes_stay_inside_the_job() -> None:
    async def job() -> None:
        VAR.set("inner")
        await asyncio.sleep(0)
        assert VAR.get() == "inner"

    task = eager.start(job())
    assert VAR.get() == "outer"
    assert task is not None
    await task
    assert VAR.get() == "outer"
