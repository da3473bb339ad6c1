"""Flows through the App and a worker, on both backends: chain, group, chord, parent/child
with each failure policy; refusals (unknown task, cycle) write nothing."""

from __future__ import annotations

from typing import Any

import pytest

from conveyor.broker.broker import Broker
from conveyor.clock import ManualClock
from conveyor.errors import FlowCycle, InvalidFlow, UnknownTask
from conveyor.flows import FlowStep, flow_json
from conveyor.worker import App, JobFailed, Worker, WorkerOptions, chain, chord, group
from tests.worker.helpers import running


def make_app(broker: Broker, clock: ManualClock) -> tuple[App, dict[str, list[Any]]]:
    app = App(clock=clock)
    app.use(broker)
    calls: dict[str, list[Any]] = {}

    @app.task(queue="flow")
    def add(x: int, y: int) -> int:
        calls.setdefault("add", []).append((x, y))
        return x + y

    @app.task(queue="flow")
    async def mul(x: int, y: int) -> int:
        return x * y

    @app.task(queue="flow-b")
    def square(x: int) -> int:
        return x * x

    @app.task(queue="flow")
    def total(values: list[int]) -> int:
        calls.setdefault("total", []).append(values)
        return sum(v or 0 for v in values)

    @app.task(queue="flow", max_retries=0)
    def fail(why: str) -> None:
        raise RuntimeError(why)

    return app, calls


async def test_chain_passes_each_result_on(broker: Broker, clock: ManualClock) -> None:
    app, _ = make_app(broker, clock)
    add, mul = app.tasks["add"], app.tasks["mul"]
    run = await chain(add.s(1, 2), mul.s(10), add.s(5)).aenqueue()
    assert [n.state for n in run.flow.nodes] == ["queued", "waiting", "waiting"]
    async with running(Worker(app, WorkerOptions(wait_seconds=0))):
        assert await run.result(timeout=20) == 35
    tree = flow_json(await run.tree())
    assert [(n["task"], n["state"], n["after"], n["result"]) for n in tree["nodes"]] == [
        ("add", "succeeded", [], 3), ("mul", "succeeded", [0], 30),
        ("add", "succeeded", [1], 35)]
    assert (await broker.flows.of_job(run.job_ids[1])).flow_id == run.id


async def test_chord_runs_its_callback_once_with_every_result(broker: Broker,
                                                              clock: ManualClock) -> None:
    app, calls = make_app(broker, clock)
    square, total = app.tasks["square"], app.tasks["total"]
    run = await chord(group(square.s(i) for i in range(50)), total.s()).aenqueue()
    async with running(Worker(app, WorkerOptions(wait_seconds=0))):
        assert await run.result(timeout=30) == sum(i * i for i in range(50))
    assert calls["total"] == [[i * i for i in range(50)]]
    # a group alone, and a group inside a chain: the next step gets the list
    add = app.tasks["add"]
    run = await chain(add.s(1, 1), group(add.s(10), add.s(20)), total.s()).aenqueue()
    async with running(Worker(app, WorkerOptions(wait_seconds=0))):
        assert await run.result(timeout=20) == 34
        fan = await group(square.s(2), square.s(3)).aenqueue()
        assert await fan.result(timeout=20) == [4, 9]


@pytest.mark.parametrize("policy", ["fail", "ignore", "continue"])
async def test_parent_child_failure_policies(broker: Broker, clock: ManualClock,
                                             policy: str) -> None:
    app, calls = make_app(broker, clock)
    add, total, fail = app.tasks["add"], app.tasks["total"], app.tasks["fail"]
    run = await app.flow(total.s(), children=[
        add.s(1, 2), fail.s("no").set(on_failure=policy)]).aenqueue()
    async with running(Worker(app, WorkerOptions(wait_seconds=0))):
        if policy == "fail":
            with pytest.raises(JobFailed):
                await run.result(timeout=20)
        else:
            assert await run.result(timeout=20) in (3, 0)
    tree = await run.tree()
    parent = tree.nodes[2]
    assert tree.nodes[1].state == "failed" and "no" in (tree.nodes[1].error or "")
    if policy == "fail":
        assert parent.state == "failed" and "total" not in calls
        assert parent.error is not None and parent.error.startswith("step 1 failed")
    elif policy == "ignore":
        assert calls["total"] == [[3, None]]
    else:  # continue: the parent ran once, at the failure, whether or not add had ended
        assert len(calls["total"]) == 1 and calls["total"][0][1] is None


async def test_bad_flows_are_refused_and_write_nothing(broker: Broker,
                                                       clock: ManualClock) -> None:
    app, _ = make_app(broker, clock)
    add = app.tasks["add"]
    await app.ensure_queue("flow")
    with pytest.raises(UnknownTask, match="'nope'"):
        await chain(add.s(1, 2), app.signature("nope")).aenqueue()
    with pytest.raises(FlowCycle):
        await broker.flows.create([FlowStep("add", "flow", [1, 2], after=[1]),
                                   FlowStep("add", "flow", [3], after=[0])])
    with pytest.raises(InvalidFlow):
        await broker.flows.create([FlowStep("add", "flow", after=[5])])
    with pytest.raises(InvalidFlow):
        add.s(1).set(on_failure="maybe")
    assert (await broker.queue_stats("flow")).total == 0


async def test_a_result_that_is_not_json_is_passed_on_as_none(broker: Broker,
                                                               clock: ManualClock) -> None:
    app, _ = make_app(broker, clock)
    got: list[Any] = []

    @app.task(queue="flow")
    def odd() -> set[int]:
        return {1, 2}

    @app.task(queue="flow")
    def keep(value: Any) -> str:
        got.append(value)
        return "kept"

    run = await chain(odd.s(), keep.s()).aenqueue()
    async with running(Worker(app, WorkerOptions(wait_seconds=0))):
        assert await run.result(timeout=20) == "kept"
    assert got == [None]
