"""Per-key rate limits and global concurrency (two workers, one database), cron exactly once
with three schedulers on an injected clock, rate parsing, backoff and the autoscaler's rule."""

from __future__ import annotations

import asyncio
import random

import pytest

from conveyor.broker.broker import Broker
from conveyor.clock import ManualClock
from conveyor.errors import InvalidInput
from conveyor.worker import App, Rate, TaskOptions, Worker, WorkerOptions
from conveyor.worker.autoscale import Autoscaler, Sample
from conveyor.worker.cron import Scheduler
from conveyor.worker.retry import backoff_seconds
from tests.conftest import OpenBroker
from tests.worker.helpers import eventually, running


async def test_per_key_rate_limit(broker: Broker, clock: ManualClock) -> None:
    """The clock stands still, so each key's bucket grants one token (the chunk a 2/1s rate
    takes at once) and no more until the clock moves half a second (one emission
    interval): never more than 2 per key in any second."""
    app = App(clock=clock)
    app.use(broker)
    sent: list[str] = []

    @app.task(queue="mail", rate_limit="2/1s", concurrency=30,
              rate_limit_key=lambda to: to.split("@")[1])
    async def mail(to: str) -> None:
        sent.append(to.split("@")[1])

    await mail.aenqueue_many([((f"u{i}@{d}",), {}) for i in range(4) for d in "abc"])
    async with running(Worker(app, WorkerOptions(wait_seconds=0))):
        for step in range(1, 5):
            await eventually(lambda step=step: len(sent) == 3 * step,
                             what=f"tokens of step {step}")
            await asyncio.sleep(0.3)
            assert sorted(sent) == sorted(["a", "b", "c"] * step)
            clock.advance(0.5)
    assert sorted(sent) == sorted(["a", "b", "c"] * 4)


async def test_global_concurrency_across_workers(broker: Broker, clock: ManualClock,
                                                 open_broker: OpenBroker) -> None:
    state = {"now": 0, "peak": 0, "done": 0}
    apps = []
    for source in (broker, await open_broker()):
        app = App(clock=clock)
        app.use(source)

        @app.task(name="scarce", queue="scarce", concurrency=5, global_concurrency=2)
        async def scarce() -> None:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
            await asyncio.sleep(0.05)
            state["now"] -= 1
            state["done"] += 1

        apps.append(app)
    await apps[0].tasks["scarce"].aenqueue_many([((), {})] * 12)
    workers = [Worker(a, WorkerOptions(wait_seconds=0)) for a in apps]
    async with running(workers[0]), running(workers[1]):
        await eventually(lambda: state["done"] == 12, what="all done")
    assert state["peak"] == 2


async def test_cron_exactly_once_with_three_schedulers(broker: Broker, clock: ManualClock,
                                                       open_broker: OpenBroker) -> None:
    clock.ms -= clock.ms % 60_000  # on a minute boundary
    schedulers = []
    for source in (broker, await open_broker(), await open_broker()):
        app = App(clock=clock)
        app.use(source)

        @app.cron("*/5 * * * *", queue="cron")
        def digest() -> None: ...

        @app.cron("0 9 * * *", tz="Europe/Paris", queue="cron")
        def morning() -> None: ...

        schedulers.append(Scheduler(app, source, grace=600))
    start = clock()
    for _ in range(24 * 6):  # one day, a check every 10 minutes (two ticks), shuffled
        clock.advance(600)
        random.shuffle(schedulers)
        await asyncio.gather(*(s.tick() for s in schedulers))
    messages = await broker.receive("cron", 1000)
    bodies = [m.body.value()["task"] for m in messages]
    # The first check (at +10 min) fires only the latest of the two ticks it finds.
    assert bodies.count("digest") == 24 * 60 // 5 - 1
    assert bodies.count("morning") == 1
    assert all(m.sent_at > start for m in messages)


async def test_cron_missed_ticks_are_skipped_beyond_grace(broker: Broker,
                                                          clock: ManualClock) -> None:
    clock.ms -= clock.ms % 60_000
    app = App(clock=clock)
    app.use(broker)

    @app.cron("* * * * *", queue="every-minute")
    def tick() -> None: ...

    scheduler = Scheduler(app, broker, grace=90)  # ticks at now-60 s and now
    clock.advance(600)  # ten minutes with no scheduler running: only the last 90 s count,
    assert await scheduler.tick() == 1  # and at start only the latest of those
    clock.advance(60)
    assert await scheduler.tick() == 1


async def test_seconds_and_intervals_tick_once_across_schedulers(
        broker: Broker, clock: ManualClock, open_broker: OpenBroker) -> None:
    clock.ms -= clock.ms % 60_000
    schedulers = []
    for source in (broker, await open_broker()):
        app = App(clock=clock)
        app.use(source)

        @app.cron("*/10 * * * * *", queue="fine")
        def ten_seconds() -> None: ...

        @app.cron(every=15, queue="fine")
        def fifteen() -> None: ...

        schedulers.append(Scheduler(app, source))
    await asyncio.gather(*(s.tick() for s in schedulers))  # the tick at :00 of each
    for _ in range(120):  # two minutes, a check a second
        clock.advance(1)
        random.shuffle(schedulers)
        await asyncio.gather(*(s.tick() for s in schedulers))
    bodies = [m.body.value()["task"] for m in await broker.receive("fine", 100)]
    assert bodies.count("ten_seconds") == 1 + 12
    assert bodies.count("fifteen") == 1 + 8
    assert schedulers[0].seconds_to_next() <= 10


def test_schedule_input_is_checked() -> None:
    app = App()

    def job() -> None: ...

    for args, kwargs, field in [
            ((), {}, "cron"), (("* * * * *",), {"every": 5}, "cron"),
            (("* * * *",), {}, "cron"), (("61 * * * * *",), {}, "cron"),
            ((), {"every": 0}, "every"), ((), {"every": True}, "every"),
            ((), {"every": 0.0001 + 1}, "every"), (("* * * * *",), {"tz": "Mars/Base"}, "tz")]:
        with pytest.raises(InvalidInput) as info:
            app.cron(*args, name=f"j{len(app.tasks)}", **kwargs)(job)
        assert info.value.field == field, (args, kwargs)
    app.cron(every=2.5, name="fine")(job)
    with pytest.raises(InvalidInput):
        app.cron(every=2.5, name="fine")(app.tasks["fine"])


def test_rate_parsing() -> None:
    assert Rate.parse("300/m") == Rate(300, 60)
    assert Rate.parse("50/10s") == Rate(50, 10)
    assert Rate.parse("1000/h") == Rate(1000, 3600)
    assert Rate.parse("5/s").chunk == 1 and Rate.parse("300/m").chunk == 30
    for bad in ("", "x/m", "10", "0/s", "10/0s", "5/w"):
        with pytest.raises(InvalidInput):
            Rate.parse(bad)


def test_backoff_grows_with_jitter_and_caps() -> None:
    options = TaskOptions(retry_backoff=2, retry_backoff_max=60)
    rng = random.Random(7)
    for attempt, ceiling in [(1, 2), (2, 4), (3, 8), (4, 16), (10, 60)]:
        delays = {backoff_seconds(options, attempt, rng) for _ in range(50)}
        assert min(delays) >= max(1, ceiling // 2) and max(delays) <= ceiling
    assert backoff_seconds(TaskOptions(retry_backoff=0), 5) == 0


def test_autoscaler_rule() -> None:
    scaler = Autoscaler(1, 3, idle_checks=2)
    assert scaler.decide(1, Sample(100, 1, 5)) == 1  # first look: no trend yet
    assert scaler.decide(1, Sample(150, 1, 6)) == 2  # growing backlog
    assert scaler.decide(2, Sample(140, 2, 7)) == 3  # oldest message getting older
    assert scaler.decide(3, Sample(200, 3, 8)) == 3  # at the maximum
    assert scaler.decide(3, Sample(10, 3, 1)) == 3  # draining: hold
    assert scaler.decide(3, Sample(0, 0, 0)) == 3  # idle once
    assert scaler.decide(3, Sample(0, 0, 0)) == 2  # idle twice: shrink
    assert scaler.decide(2, Sample(0, 0, 0)) == 2
    assert scaler.decide(2, Sample(0, 0, 0)) == 1
    assert scaler.decide(1, Sample(0, 0, 0)) == 1  # never below the minimum
