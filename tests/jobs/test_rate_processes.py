"""A rate limit holds across processes: three real processes share one key on one database."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

ROOT = Path(__file__).resolve().parents[2]
RATE, PER, CHUNK = 20, 1.0, 5
PROCESSES = 3
SECONDS = 2.5


@pytest.mark.slow
def test_three_processes_together_stay_within_the_rate(database_url: str) -> None:
    takers = [subprocess.Popen(
        [sys.executable, "-m", "tests.jobs.rate_taker", database_url, "mail", str(RATE),
         str(PER), str(CHUNK)], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE) for _ in range(PROCESSES)]
    # Started together once every interpreter is up and connected, however long a loaded
    # machine takes for that (a fixed head start once left all three none of the run).
    for taker in takers:
        assert taker.stdout is not None
        assert taker.stdout.readline() == b"ready\n", taker.communicate(timeout=30)[1]
    start_at = time.time() + 0.1
    stop_at = start_at + SECONDS
    for taker in takers:
        assert taker.stdin is not None
        taker.stdin.write(f"{start_at} {stop_at}\n".encode())
        taker.stdin.flush()  # communicate() closes it
    grants: list[tuple[float, int]] = []
    per_process: list[int] = []
    for taker in takers:
        out, err = taker.communicate(timeout=30)
        assert taker.returncode == 0, err.decode()
        mine = [(float(t), int(n)) for t, n in orjson.loads(out)]
        per_process.append(sum(n for _, n in mine))
        grants.extend(mine)
    grants.sort()
    total = sum(n for _, n in grants)
    # GCRA's bound, for every prefix of the run: burst (= rate) at once, then rate per
    # `per`. The grant times are taken after the database answered, so allow 50 ms.
    taken = 0
    for at, n in grants:
        taken += n
        assert taken <= RATE + max(0.0, at - start_at + 0.05) * RATE / PER, (at, taken)
    assert total <= RATE + SECONDS * RATE / PER
    # Every process got a share, and together they used much of the limit, not a trickle
    # (loosely: a loaded machine may start the processes late).
    assert all(n > 0 for n in per_process), per_process
    assert total >= (RATE + SECONDS * RATE / PER) * 0.5, total
    steady = (total - RATE) / SECONDS  # the rate after the initial burst
    print(f"\n{database_url.split(':')[0]}: {total} tokens in {SECONDS} s by {per_process}; "
          f"after the burst {steady:.1f}/s (limit {RATE / PER:.0f}/s)")
    assert steady <= RATE / PER
