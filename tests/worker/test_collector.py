"""The garbage collector's settings for long-running processes (conveyor.collector)."""

from __future__ import annotations

import gc
import subprocess
import sys
from collections.abc import Iterator

import pytest

from conveyor.collector import THRESHOLDS, tune_collector


@pytest.fixture
def restore() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_freezes_and_makes_collections_rarer(restore: None) -> None:
    gc.set_threshold(700, 10, 10)
    tune_collector()
    assert gc.get_threshold() == THRESHOLDS
    assert gc.get_freeze_count() > 1000  # this process's modules, at least


def test_never_makes_collections_more_frequent(restore: None) -> None:
    gc.set_threshold(50_000, 5, 1_000)
    tune_collector()
    assert gc.get_threshold() == (50_000, 20, 1_000)


def test_leaves_a_disabled_threshold_alone(restore: None) -> None:
    gc.set_threshold(0, 10, 10)
    tune_collector()
    assert gc.get_threshold() == (0, 10, 10)


def test_cycles_made_after_it_are_still_collected() -> None:
    code = """
import gc, weakref
from conveyor.collector import tune_collector
tune_collector()
class Node: pass
refs = []
for _ in range(100_000):
    a, b = Node(), Node()
    a.other, b.other = b, a
    refs.append(weakref.ref(a))
alive = sum(1 for r in refs if r() is not None)
print(alive)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert int(out) < 100_000 // 2  # without a collection every one would be alive
