"""`conveyor demo --messages 5000` end to end, as a subprocess, checking its report."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_demo_5000_passes_its_own_check(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    done = subprocess.run([sys.executable, "-m", "conveyor.cli.main", "demo", "--messages",
                           "5000", "--no-progress"], capture_output=True, text=True,
                          timeout=110, cwd=tmp_path, env=env)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "5,000 (3,500 email, 1,500 web push)" in out
    assert re.search(r"email sink\s+3,500 received, 3,500 distinct, 0 missing, "
                     r"0 duplicated, 0 unexpected; content checked on 3,500, 0 wrong", out)
    assert re.search(r"push sink\s+1,500 received, 1,500 distinct, 0 missing, "
                     r"0 duplicated, 0 unexpected; content checked on 1,500, 0 wrong", out)
    assert "PASS: every notification arrived exactly once" in out
    for line in ("wall time", "enqueue", "latency", "CPU", "bottleneck", "cost"):
        assert line in out


@pytest.mark.slow
def test_demo_without_smtp_sink_uses_aiosmtpd(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    done = subprocess.run([sys.executable, "-m", "conveyor.cli.main", "demo", "--messages",
                           "2000", "--mix", "email=1", "--no-smtp-sink", "--no-progress"],
                          capture_output=True, text=True, timeout=110, cwd=tmp_path, env=env)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "email: aiosmtpd" in out and "SMTP client       aiosmtplib pool" in out
    assert re.search(r"email sink\s+2,000 received, 2,000 distinct, 0 missing", out)
    assert "lanes (email)" in out and "bottleneck" in out
    assert "PASS: every notification arrived exactly once" in out
