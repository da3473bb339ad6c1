"""The README's examples are files, and they run."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

from tests.http.server import start_server
from tests.sqs.server import SqsServer

ROOT = Path(__file__).parent.parent.parent
QUICKSTART = ROOT / "examples" / "quickstart"


def _run(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, str(QUICKSTART / script), *args],
                          capture_output=True, text=True, timeout=60, cwd=cwd,
                          env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    return done


def test_job_queue_example_runs_on_its_own_file(tmp_path: Path) -> None:
    done = _run("tasks.py", cwd=tmp_path)
    assert sorted(done.stdout.splitlines()) == [
        f"welcome mail to user {i} <user{i}@example.com>" for i in (1, 2, 3)]
    assert (tmp_path / "quickstart-jobs.db").exists()  # relative: not the embedded default


def test_the_readme_s_worker_command_works_on_the_example_s_jobs(tmp_path: Path) -> None:
    command = ".venv/bin/conveyor worker examples.quickstart.tasks:app"
    assert f"`{command}`" in (ROOT / "README.md").read_text()
    database = f"sqlite:///{tmp_path / 'jobs.db'}"
    enqueue = ("import asyncio, examples.quickstart.tasks as t\n"
               "async def main():\n"
               "    await t.send_welcome.aenqueue(7, 'u7@example.com')\n"
               "    await t.app.aclose()\n"
               "asyncio.run(main())\n")
    env = {"PATH": "/usr/bin:/bin", "CONVEYOR_EXAMPLE_DATABASE": database}
    subprocess.run([sys.executable, "-c", enqueue], cwd=ROOT, env=env, check=True,
                   timeout=60)
    worker = subprocess.Popen(
        [sys.executable, "-m", "conveyor.cli.main", *command.split()[1:]], cwd=ROOT,
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert worker.stdout is not None
        lines = []
        for line in worker.stdout:  # the job's line, or the worker's end on a failure
            lines.append(line)
            if "welcome mail to user 7 <u7@example.com>" in line:
                break
        else:
            raise AssertionError("".join(lines))
    finally:
        worker.send_signal(signal.SIGINT)
        worker.communicate(timeout=30)


def test_in_process_example_is_the_readme_s_and_writes_here(tmp_path: Path) -> None:
    code = (QUICKSTART / "inprocess.py").read_text().split('"""\n\n', 1)[1]
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
    assert code in blocks
    done = _run("inprocess.py", cwd=tmp_path)
    assert done.stdout == "reminding ada@example.com\n"
    assert (tmp_path / "inprocess-example.db").exists()


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


def test_stream_example_runs(tmp_path: Path) -> None:
    server = start_server(tmp_path / "server", ["--no-sqs", "--database",
                                                f"sqlite:///{tmp_path}/stream.db"])
    try:
        done = _run("stream.py", server.url, cwd=tmp_path)
    finally:
        assert server.stop() == 0, server.logs()
    assert sorted(done.stdout.splitlines()) == [f"got hello {i}" for i in range(3)]


def test_flows_example_runs(tmp_path: Path) -> None:
    done = _run("flows.py", cwd=tmp_path)
    assert done.stdout.splitlines() == ["chain 6", "chord 12", "parent 8"]
    assert (tmp_path / "quickstart-flows.db").exists()
