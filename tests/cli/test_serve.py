"""`conveyor serve` and `conveyor migrate` as processes: default database, workers, signals."""

from __future__ import annotations

import os
import re
import socket
import sqlite3
import subprocess
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

from tests.cli.conftest import conveyor_command, run_conveyor
from tests.http.server import start_server


def test_migrate_creates_the_schema(tmp_path: Path) -> None:
    database = tmp_path / "m.db"
    result = run_conveyor("migrate", "--database", f"sqlite:///{database}")
    assert result.returncode == 0, result.stderr
    assert "schema at version" in result.stdout
    with sqlite3.connect(database) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    assert "conveyor_migrations" in tables


def test_sqlite_urls_follow_sqlalchemy_and_say_which_file(tmp_path: Path) -> None:
    """`sqlite:///x.db` is relative to the working directory, `sqlite:////abs/x.db` absolute
    (three slashes once meant the root: a newcomer's example wrote /x.db)."""
    work = tmp_path / "work"
    work.mkdir()
    relative = run_conveyor("migrate", "--database", "sqlite:///rel.db", cwd=work)
    assert relative.returncode == 0, relative.stderr
    assert (work / "rel.db").exists()
    assert f"creating the SQLite database {work / 'rel.db'}" in relative.stderr
    again = run_conveyor("migrate", "--database", "sqlite:///rel.db", cwd=work)
    assert f"using the SQLite database {work / 'rel.db'}" in again.stderr
    absolute = tmp_path / "abs.db"
    assert str(absolute).startswith("/")
    made = run_conveyor("migrate", "--database", f"sqlite:///{absolute}", cwd=work)
    assert made.returncode == 0 and absolute.exists(), made.stderr


def test_migrate_names_a_postgres_database_without_its_password(postgres_url: str) -> None:
    parts = urlsplit(postgres_url)
    secret = parts.password or "s3cret"  # (the local test server trusts loopback)
    host = parts.netloc.rpartition("@")[2]
    url = urlunsplit(parts._replace(netloc=f"{parts.username}:{secret}@{host}"))
    result = run_conveyor("migrate", "--database", f"{url}?password={secret}")
    assert result.returncode == 0, result.stderr
    shown = urlunsplit(parts._replace(netloc=f"{parts.username}@{host}"))
    assert f"using PostgreSQL {shown}" in result.stderr
    assert secret not in result.stderr + result.stdout


def test_a_reader_that_goes_away_is_no_error(tmp_path: Path) -> None:
    # `conveyor ... | head -1`: stdout's reader is gone before the command writes.
    read, write = os.pipe()
    os.close(read)
    with os.fdopen(write, "wb") as gone:
        done = subprocess.run([*conveyor_command(), "migrate", "--database",
                               f"sqlite:///{tmp_path / 'p.db'}"], stdout=gone,
                              stderr=subprocess.PIPE, text=True, timeout=60, check=False)
    assert done.returncode == 141
    assert "Broken pipe" not in done.stderr and "Traceback" not in done.stderr


def test_a_port_clash_names_the_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_conveyor("serve", "--port", str(port), "--no-sqs", "--database",
                              f"sqlite:///{tmp_path}/clash.db")
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "--port" in result.stderr


def test_serve_without_database_uses_the_embedded_file(tmp_path: Path) -> None:
    data_home = tmp_path / "data"
    env = {"XDG_DATA_HOME": str(data_home), "HOME": str(tmp_path)}
    server = start_server(tmp_path / "run", ["--no-sqs"], env=env)
    try:
        created = httpx.post(f"{server.url}/v1/queues", json={"name": "here"})
        assert created.status_code == 201
    finally:
        assert server.stop() == 0, server.logs()
    database = data_home / "conveyor" / "conveyor.db"
    assert database.exists()
    assert f"creating the embedded SQLite database {database}" in server.logs()


def test_environment_configures_serve(tmp_path: Path) -> None:
    database = tmp_path / "env.db"
    env = {"CONVEYOR_DATABASE_URL": f"sqlite:///{database}", "CONVEYOR_NO_SQS": "true",
           "CONVEYOR_REGION": "eu-west-1"}
    server = start_server(tmp_path / "run", env=env)
    try:
        queue = httpx.post(f"{server.url}/v1/queues", json={"name": "regional"}).json()
        assert queue["region"] == "eu-west-1"
        assert "SQS endpoint" not in server.logs()
        for name, path in (("dashboard", "/"), ("API docs", "/api-docs"),
                           ("metrics", "/metrics")):  # the banner's links all answer
            assert re.search(rf"{name} +{re.escape(server.url + path)}\n", server.logs())
            assert httpx.get(server.url + path).status_code == 200
    finally:
        assert server.stop() == 0, server.logs()
    assert database.exists()


def test_two_workers_share_the_socket_and_the_database(tmp_path: Path) -> None:
    server = start_server(tmp_path / "run", ["--workers", "2", "--no-sqs", "--database",
                                             f"sqlite:///{tmp_path}/w.db"])
    try:
        assert "started 2 worker processes" in server.logs()
        httpx.post(f"{server.url}/v1/queues", json={"name": "shared"})
        for i in range(20):  # new connections land on either worker
            response = httpx.post(f"{server.url}/v1/queues/shared/messages",
                                  json={"messages": [{"body": i}]})
            assert response.status_code == 201
        got = httpx.post(f"{server.url}/v1/queues/shared/messages/receive",
                         json={"max_messages": 100}).json()["messages"]
        assert sorted(m["body"] for m in got) == list(range(20))
    finally:
        assert server.stop() == 0, server.logs()


def test_sqs_endpoint_runs_beside_the_native_api(tmp_path: Path) -> None:
    server = start_server(tmp_path / "run", ["--sqs-port", "0", "--database",
                                             f"sqlite:///{tmp_path}/s.db"])
    try:
        if server.sqs_url is None:  # conveyor.sqs.app not installed
            assert "SQS endpoint not installed" in server.logs()
            return
        httpx.post(f"{server.url}/v1/queues", json={"name": "both"})
        response = httpx.post(server.sqs_url, headers={
            "X-Amz-Target": "AmazonSQS.ListQueues",
            "Content-Type": "application/x-amz-json-1.0"}, content=b"{}")
        assert response.status_code == 200, response.text
        assert "both" in response.text
    finally:
        assert server.stop() == 0, server.logs()


def test_port_in_use_fails_with_a_message(tmp_path: Path) -> None:
    server = start_server(tmp_path / "run", ["--no-sqs", "--database",
                                             f"sqlite:///{tmp_path}/p.db"])
    try:
        port = server.url.rsplit(":", 1)[1]
        result = run_conveyor("serve", "--port", port, "--no-sqs", "--database",
                              f"sqlite:///{tmp_path}/p2.db")
        assert result.returncode == 1
        assert "conveyor: error:" in result.stderr
    finally:
        server.stop()
