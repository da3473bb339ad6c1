"""A server for the client commands, and a way to run `conveyor` as a subprocess."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from tests.http.server import ServerProcess, conveyor_command, start_server

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """`conveyor serve` on a fresh SQLite file and a free port."""
    directory = Path(tmp_path_factory.mktemp("cli-server"))
    process = start_server(directory, ["--database", f"sqlite:///{directory}/cli.db",
                                       "--no-sqs"])
    yield process
    assert process.stop() == 0, process.logs()


def run_conveyor(*args: str, env: Mapping[str, str] | None = None, stdin: str | None = None,
                 timeout: float = 30.0, cwd: Path | None = None
                 ) -> subprocess.CompletedProcess[str]:
    """Run `conveyor ARGS` with a clean CONVEYOR_* environment plus `env`."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    environment.update(env or {})
    return subprocess.run([*conveyor_command(), *args], capture_output=True, text=True,
                          env=environment, input=stdin, timeout=timeout, check=False,
                          cwd=cwd)


@pytest.fixture
def conveyor(server: ServerProcess) -> Run:
    """Run a client command against the module's server (through CONVEYOR_URL)."""

    def run(*args: str, stdin: str | None = None, ok: bool = True
            ) -> subprocess.CompletedProcess[str]:
        result = run_conveyor(*args, env={"CONVEYOR_URL": server.url}, stdin=stdin)
        if ok:
            assert result.returncode == 0, (result.stdout, result.stderr)
        return result

    return run
