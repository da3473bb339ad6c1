"""`conveyor export` / `conveyor import` as subprocesses against real servers: a queue's
messages survive the round trip (kinds, attributes, priorities, groups, dedup ids), also
from SQLite to PostgreSQL."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.http.server import ServerProcess, conveyor_command, start_server

MESSAGES: list[dict[str, Any]] = [
    {"body": "plain text"},
    {"body": "123"},  # text that looks like JSON stays text
    {"body": {"order": 7, "items": [1, 2]}, "priority": 9},
    {"body": [1, "two", None]},
    {"body": 123456789012345678901234567890},
    {"body": "ünïcødé ✓ <b>", "attributes": {
        "trace": {"type": "String", "value": "abc"},
        "n": {"type": "Number", "value": "42"},
        "raw": {"type": "Binary", "value": "AAEC"}}},
    {"body": "with dedup", "deduplication_id": "d-1"},
]
FIFO_MESSAGES = [{"body": f"m{i}", "group_id": f"g{i % 2}", "deduplication_id": f"x{i}"}
                 for i in range(4)]


def _serve(directory: Path, url: str) -> ServerProcess:
    return start_server(directory, ["--database", url, "--no-sqs"])


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    directory = Path(tmp_path_factory.mktemp("source"))
    server = _serve(directory, f"sqlite:///{directory}/a.db")
    _fill(server)
    yield server
    assert server.stop() == 0


def _cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*conveyor_command(), *args], input=stdin, capture_output=True,
                          timeout=60, check=False)


def _fill(server: ServerProcess) -> None:
    """The source queues (dedup ids from here would drop a re-import into these same
    queues for 5 minutes, so copies go to other queues or servers)."""
    with httpx.Client(base_url=server.url) as api:
        api.post("/v1/queues", json={"name": "work"}).raise_for_status()
        api.post("/v1/queues/work/messages", json={"messages": MESSAGES}).raise_for_status()
        api.post("/v1/queues", json={"name": "ordered.fifo", "attributes": {"fifo": True}}
                 ).raise_for_status()
        api.post("/v1/queues/ordered.fifo/messages", json={"messages": FIFO_MESSAGES}
                 ).raise_for_status()
        # One in flight: export still sees it (peek leases nothing).
        api.post("/v1/queues/work/messages/receive", json={"max_messages": 1})


def _comparable(lines: bytes) -> list[dict[str, Any]]:
    keep = ("kind", "body", "attributes", "priority", "group_id", "deduplication_id")
    return [{k: record[k] for k in keep} for record in map(json.loads, lines.splitlines())]


def _round_trip(source: ServerProcess, target: ServerProcess, tmp_path: Path,
                prefix: str = "") -> None:
    for queue, expected in (("work", MESSAGES), ("ordered.fifo", FIFO_MESSAGES)):
        dump = tmp_path / f"{queue}.jsonl"
        copy = prefix + queue
        out = _cli("export", queue, "--url", source.url, "-f", str(dump))
        assert out.returncode == 0, out.stderr
        assert f"exported {len(expected)} messages".encode() in out.stderr
        first = dump.read_bytes()
        assert len(first.splitlines()) == len(expected)
        if queue == "ordered.fifo":
            with httpx.Client(base_url=target.url) as api:
                api.post("/v1/queues", json={"name": copy, "attributes": {"fifo": True}})
            created = _cli("import", copy, "--url", target.url, stdin=first)
        else:
            created = _cli("import", copy, "--url", target.url, "--create", "-f", str(dump))
        assert created.returncode == 0, created.stderr
        again = _cli("export", copy, "--url", target.url)
        assert again.returncode == 0, again.stderr
        assert _comparable(again.stdout) == _comparable(first)
        if queue == "work":
            assert [r["kind"] for r in _comparable(again.stdout)] == [
                "text", "text", "json", "json", "json", "text", "text"]
            # exactly the bodies sent (an integer beyond 64 bits included), not just the
            # same as the first export
            assert [r["body"] for r in _comparable(again.stdout)] == [
                m["body"] for m in MESSAGES]


def test_round_trip_into_another_queue(source: ServerProcess, tmp_path: Path) -> None:
    _round_trip(source, source, tmp_path, prefix="copy-")


@pytest.mark.postgres
def test_round_trip_sqlite_to_postgres(source: ServerProcess, postgres_url: str,
                                       tmp_path: Path) -> None:
    target = _serve(tmp_path / "b", postgres_url)
    try:
        _round_trip(source, target, tmp_path)
    finally:
        assert target.stop() == 0


def test_errors_are_reported(source: ServerProcess, tmp_path: Path) -> None:
    missing = _cli("export", "nope", "--url", source.url)
    assert missing.returncode == 1 and b"does not exist" in missing.stderr
    no_queue = _cli("import", "nope", "--url", source.url, stdin=b'{"body": "x"}\n')
    assert no_queue.returncode == 1 and b"does not exist" in no_queue.stderr
    garbage = _cli("import", "g", "--url", source.url, "--create",
                   stdin=b'{"body": "ok"}\n\nnot json\n')
    assert garbage.returncode == 1 and b"line 3" in garbage.stderr
    bad = _cli("import", "g", "--url", source.url,
               stdin=b'{"body": "ok"}\n{"body": "x", "priority": 99}\n')
    assert bad.returncode == 1 and b"line 2" in bad.stderr, bad.stderr
