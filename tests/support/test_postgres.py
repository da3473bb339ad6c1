"""The test PostgreSQL helpers themselves: the throwaway cluster and per-test databases."""

from __future__ import annotations

import time

import psycopg
import pytest

from tests.support.postgres import (
    PREFIX,
    PostgresServer,
    TempCluster,
    find_bindir,
    in_ci,
    with_database,
)


def test_with_database() -> None:
    assert with_database("postgresql://u:p@h:5/db?sslmode=disable", "other") == \
        "postgresql://u:p@h:5/other?sslmode=disable"


@pytest.mark.slow
def test_throwaway_cluster_lifecycle() -> None:
    bindir = find_bindir()
    if bindir is None:
        if in_ci():
            pytest.fail("no PostgreSQL binaries (initdb, pg_ctl) on CI")
        pytest.skip("no PostgreSQL binaries (initdb, pg_ctl)")
    cluster = TempCluster(bindir)
    cluster.start()
    prepared: list[str] = []
    server = PostgresServer(cluster.url, "test", cluster)
    try:
        server.open(prepared.append)
        assert prepared == [with_database(cluster.url, server.template)]
        database = server.create_database()
        assert database.name.startswith(PREFIX)
        with psycopg.connect(database.url) as db:
            assert db.execute("SELECT current_database()").fetchone() == (database.name,)
            assert db.execute("SHOW server_encoding").fetchone() == ("UTF8",)
        server.drop_database(database.name)
    finally:
        assert server.close() == []
    assert not cluster.root.exists()


@pytest.mark.timeout(240)
def test_databases_are_dropped(postgres_server: PostgresServer) -> None:
    # A server of its own (its own template and dropper): the session's dropper may be
    # tens of seconds behind on a loaded machine, each drop costing a checkpoint, and one
    # checkpoint took over 30 s while benchmarks wrote to the same server.
    server = PostgresServer(postgres_server.admin_url, "test")
    server.open()
    try:
        database = server.create_database()
        server.drop_database(database.name)
        deadline = time.monotonic() + 180
        with psycopg.connect(server.admin_url, autocommit=True) as db:
            while db.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                             (database.name,)).fetchone():
                assert time.monotonic() < deadline, "the database was never dropped"
                time.sleep(0.05)
    finally:
        assert server.close() == []


def test_a_test_database_commits_without_waiting_for_the_flush(postgres_url: str) -> None:
    with psycopg.connect(postgres_url) as db:
        assert db.execute("SHOW synchronous_commit").fetchone() == ("off",)
