"""The README's examples are files, and they run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.sqs.server import SqsServer

ROOT = Path(__file__).parent.parent.parent
QUICKSTART = ROOT / "examples" / "quickstart"


def test_job_queue_example_runs(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(QUICKSTART / "tasks.py")], capture_output=True, text=True,
        timeout=60, env={"CONVEYOR_EXAMPLE_DATABASE": f"sqlite:///{tmp_path}/jobs.db",
                         "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.splitlines()) == [
        f"welcome mail to user {i} <user{i}@example.com>" for i in (1, 2, 3)]


def test_sqs_example_runs(tmp_path: Path) -> None:
    server = SqsServer(f"sqlite:///{tmp_path}/sqs.db")
    try:
        sys.path.insert(0, str(QUICKSTART))
        try:
            import sqs as example  # type: ignore[import-not-found]
        finally:
            sys.path.remove(str(QUICKSTART))
        assert example.main(server.endpoint) == "hi"
    finally:
        server.close()
