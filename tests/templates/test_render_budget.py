"""A render's CPU budget charges the template's work, not the process's: a garbage
collection that happens to run in the render's thread (a full one takes most of a second
on a big server's heap) does not refuse a sound template, up to `GC_SECONDS`; past that, a
render that keeps provoking collections pays for them."""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator

import pytest

from conveyor.errors import InvalidTemplate
from conveyor.locales import parse_template
from conveyor.notify.locales import Compiled
from conveyor.sandbox import GC_SECONDS, RENDER_SECONDS, RenderBudget, RenderLimit, spend

OUTPUT = "{% for i in range(n) %}{{ s * 10000 }}{% endfor %}"


def _spin(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


@pytest.fixture
def slow_collections() -> Iterator[list[float]]:
    """The next collections within a render take the CPU seconds put in the list, one each
    (a heap of millions of objects, without building one); the budget's callback runs
    first. The list is empty when they have all run."""
    spins: list[float] = []

    def slow(phase: str, info: dict[str, int]) -> None:
        try:
            spend()
        except RenderLimit:
            return  # not within a render
        if phase == "start" and spins:
            _spin(spins.pop())

    gc.callbacks.append(slow)
    try:
        yield spins
    finally:
        gc.callbacks.remove(slow)


def test_a_collection_is_not_charged_to_the_render(slow_collections: list[float]) -> None:
    slow_collections.append(3 * RENDER_SECONDS)
    with RenderBudget() as budget:
        # The youngest generation only: a full collection of this process's heap (a few
        # thousand tests' worth) takes most of a second itself, past GC_SECONDS with the spin.
        gc.collect(0)
        budget.tick(64)  # looks at the clock
        assert budget.used() < RENDER_SECONDS
    assert not slow_collections


def test_collections_past_their_allowance_are_charged(slow_collections: list[float]) -> None:
    slow_collections.append(GC_SECONDS + RENDER_SECONDS)
    with RenderBudget() as budget, pytest.raises(RenderLimit, match="ran past its"):
        gc.collect(0)
        budget.tick(64)


def test_a_render_hitting_a_collection_meets_its_real_limit(
        slow_collections: list[float]) -> None:
    """The CI failure this is for: the output case, refused for CPU instead of output."""
    compiled = Compiled(parse_template("big", {"locales": {"en": {"text": OUTPUT}}}),
                        remember=False)
    compiled.pick("en", "email")  # compiled now, outside the budget as on a real render
    slow_collections.extend([2 * RENDER_SECONDS] * 3)
    # A young collection every 50 allocations (the slow ones are in the render), and no
    # older ones: a full one of this process's heap would spend GC_SECONDS by itself.
    thresholds = gc.get_threshold()
    gc.set_threshold(50, 1_000_000, 1_000_000)
    try:
        with pytest.raises(InvalidTemplate, match="output passed 2,097,152"):
            compiled.render({"n": 100_000, "s": "x"}, "en", "email")
    finally:
        gc.set_threshold(*thresholds)
    assert not slow_collections
