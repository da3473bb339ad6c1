"""Schemathesis against `/openapi.json` of a live `conveyor serve`: no 5xx, and every
response matches the documented status codes, content types and schemas.

Bounded: a few dozen cases an operation. Long polls are held at 0 s so the run stays quick.
Half the generated queue names are replaced by one queue that exists, so that cases reach
past the 404 into validation and the operations themselves.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.http.server import ServerProcess, start_server

CASES = 15
QUEUE = "fuzz"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A live server on a fresh SQLite file, with the queue the cases aim at."""
    directory = tmp_path_factory.mktemp("fuzz")
    server = start_server(directory, ["--database", f"sqlite:///{directory}/fuzz.db",
                                      "--no-sqs"])
    try:
        yield server
    finally:
        server.stop()


def _aim(case: Any) -> None:
    """Point half the cases at the real queue and hold every long poll at 0 s."""
    params = case.path_parameters or {}
    if "queue" in params:
        digest = hashlib.sha256(repr(params["queue"]).encode()).digest()
        if digest[0] % 2 == 0:
            params["queue"] = QUEUE
    if isinstance(case.body, dict):
        for key in ("wait_seconds", "wait", "timeout_seconds"):
            if key in case.body:
                case.body[key] = 0
    query = case.query or {}
    for key in ("wait_seconds", "wait"):
        if key in query:
            query[key] = 0


def test_api_answers_every_case_within_its_schema(fuzz_server: ServerProcess) -> None:
    """Every operation, CASES generated cases each; all failures are reported together."""
    api = schemathesis.openapi.from_url(f"{fuzz_server.url}/openapi.json")
    failures: list[str] = []
    operations = 0
    # Both closed at the end: an unclosed pooled socket surfaces as a ResourceWarning
    # (an error here) in whichever later test the garbage collector happens to run.
    with httpx.Client(base_url=fuzz_server.url, timeout=10) as client, \
            requests.Session() as session:
        for result in api.get_all_operations():
            operation = result.ok()
            operations += 1

            @given(case=operation.as_strategy())
            @settings(max_examples=CASES, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))
            def run(case: Any) -> None:
                _aim(case)
                if case.path_parameters and case.path_parameters.get("queue") == QUEUE:
                    client.post("/v1/queues", json={"name": QUEUE})
                case.call_and_validate(base_url=fuzz_server.url, session=session, checks=CHECKS,
                                       timeout=15)

            try:
                run()
            except Exception as exc:
                failures.append(f"{operation.label}: {str(exc)[:1500]}")
    assert operations >= 20
    assert not failures, "\n\n".join(failures)


def test_server_survived(fuzz_server: ServerProcess, tmp_path: Path) -> None:
    """After the fuzzing, the server still answers and logged no traceback."""
    assert httpx.get(f"{fuzz_server.url}/healthz", timeout=5).status_code == 200
    assert "Traceback" not in fuzz_server.logs()
