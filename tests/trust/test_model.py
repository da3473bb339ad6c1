"""The broker against a reference model: random send / receive / delete / change-visibility /
clock-advance sequences (Hypothesis stateful), on SQLite and PostgreSQL.

The model is a dict of messages with `visible_at`, the current lease token and a `leased`
flag, the semantics DESIGN.md states: a receive leases exactly the visible messages (as many
as asked for, when there are that many), a handle is current only until the next receive,
a stale handle deletes and extends nothing, and an acknowledged message never comes back.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

from conveyor.broker.broker import Broker
from conveyor.clock import ManualClock
from conveyor.models import Body, SendEntry, VisibilityEntry
from conveyor.storage.factory import storage_from_url

EXAMPLES = 25
STEPS = 40


@dataclass
class Model:
    """One message as the reference model sees it."""

    body: str
    visible_at: int
    handle: str | None = None
    leased: bool = False
    receives: int = 0


class BrokerMachine(RuleBasedStateMachine):
    """Drives one broker (shared by the examples; each example has its own queue)."""

    runner: asyncio.Runner
    broker: Broker
    clock: ManualClock
    counter = itertools.count()

    handles = Bundle("handles")

    def __init__(self) -> None:
        super().__init__()
        self.queue = f"model-{next(self.counter)}"
        self.run(self.broker.create_queue(self.queue, {"visibility_timeout": 30}))
        self.messages: dict[str, Model] = {}
        self.acked: set[str] = set()
        self.bodies = itertools.count()

    def run(self, coro: Any) -> Any:
        return self.runner.run(coro)

    def now(self) -> int:
        return self.clock()

    def visible(self) -> set[str]:
        return {i for i, m in self.messages.items() if m.visible_at <= self.now()}

    @rule(count=st.integers(1, 4), delay=st.sampled_from([0, 0, 0, 5, 40]))
    def send(self, count: int, delay: int) -> None:
        entries = [SendEntry(Body(f"b{next(self.bodies)}"), delay_seconds=delay)
                   for _ in range(count)]
        results = self.run(self.broker.send(self.queue, entries))
        assert len(results) == count
        for entry, result in zip(entries, results):
            assert result.id not in self.messages and not result.duplicate
            self.messages[result.id] = Model(entry.body.text, self.now() + delay * 1000)

    @rule(target=handles, limit=st.integers(1, 5),
          timeout=st.sampled_from([None, 0, 1, 10, 60]))
    def receive(self, limit: int, timeout: int | None) -> Any:
        expected = self.visible()
        got = self.run(self.broker.receive(self.queue, limit, visibility_timeout=timeout,
                                           wait_seconds=0))
        ids = [m.id for m in got]
        assert len(ids) == len(set(ids)), "one message twice in a batch"
        assert set(ids) <= expected, f"leased invisible or unknown messages: {ids}"
        assert not set(ids) & self.acked, "an acknowledged message came back"
        assert len(ids) == min(limit, len(expected))
        seconds = 30 if timeout is None else timeout
        for message in got:
            model = self.messages[message.id]
            assert message.body.text == model.body
            model.receives += 1
            assert message.receive_count == model.receives
            model.handle = message.receipt_handle
            model.leased = True
            model.visible_at = self.now() + seconds * 1000
        return multiple(*[(m.id, m.receipt_handle) for m in got])

    @rule(handle=consumes(handles))
    def delete(self, handle: tuple[str, str]) -> None:
        message_id, receipt = handle
        [result] = self.run(self.broker.delete(self.queue, [receipt]))
        model = self.messages.get(message_id)
        current = model is not None and model.handle == receipt
        assert result.ok == current, (result, model)
        if current:
            del self.messages[message_id]
            self.acked.add(message_id)

    @rule(handle=handles, timeout=st.sampled_from([0, 0, 5, 100]))
    def change_visibility(self, handle: tuple[str, str], timeout: int) -> None:
        message_id, receipt = handle
        [result] = self.run(self.broker.change_visibility(
            self.queue, [VisibilityEntry(receipt, timeout)]))
        model = self.messages.get(message_id)
        current = model is not None and model.handle == receipt and model.leased
        assert result.ok == current, (result, model)
        if current and model is not None:
            model.visible_at = self.now() + timeout * 1000
            model.leased = timeout > 0

    @rule(seconds=st.sampled_from([1, 4, 11, 31, 61]))
    def advance(self, seconds: int) -> None:
        self.clock.advance(seconds)

    @invariant()
    def counts_agree(self) -> None:
        stats = self.run(self.broker.storage.queue_stats(
            self.run(self.broker.queue(self.queue)).id, self.now()))
        visible = len(self.visible())
        assert stats.visible == visible, (stats, visible)
        assert stats.visible + stats.in_flight + stats.delayed == len(self.messages), stats


@pytest.mark.timeout(110)
def test_broker_agrees_with_the_model(database_url: str, clock: ManualClock) -> None:
    runner = asyncio.Runner()
    broker = Broker(storage_from_url(database_url), clock=clock, sweep_interval=None,
                    queue_cache_seconds=0.0, stats_cache_seconds=0.0)
    runner.run(broker.start())
    BrokerMachine.runner, BrokerMachine.broker, BrokerMachine.clock = runner, broker, clock
    try:
        run_state_machine_as_test(BrokerMachine, settings=settings(
            max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None, database=None,
            suppress_health_check=list(HealthCheck)))
    finally:
        runner.run(broker.close())
        runner.close()
