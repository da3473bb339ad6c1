"""Every dialect's .sql files define the same query names, except an explicit few.

A query one dialect needs and the other does not is listed here with the reason, and its
block in the .sql file starts with a comment `-- Only in SQLite:` / `-- Only in PostgreSQL:`
saying why. Anything else found in one dialect only fails this test: add the other
dialect's query, or (when it is genuinely not needed) list it here and comment it.
"""

from __future__ import annotations

from importlib import resources

import pytest

from conveyor.storage.sql import load_queries

DIALECTS = {"sqlite": "SQLite", "postgres": "PostgreSQL"}

ONLY_IN: dict[tuple[str, str, str], str] = {
    # (dialect, file, query): why the other dialect has no such query
    ("sqlite", "queries.sql", "queue_dead_letters"):
        "PostgreSQL's queue_stats counts dead letters in the same statement",
    ("sqlite", "queries.sql", "counter_take"):
        "PostgreSQL draws FIFO sequence numbers in the insert (message_insert_fifo)",
    ("sqlite", "queries.sql", "message_dead_letter"):
        "PostgreSQL's message_claim dead-letters in the same statement",
    ("sqlite", "jobs.sql", "job_attempt_dead_letter_many"):
        "PostgreSQL's job_dead_letter_many ends the attempts in the same statement (a CTE)",
    ("sqlite", "jobs.sql", "cron_tick_pending"):
        "PostgreSQL's cron_lease answers it in the same statement",
    ("sqlite", "jobs.sql", "cron_lapsed"):
        "PostgreSQL's cron_lease answers it in the same statement",
    ("sqlite", "queries.sql", "signal_all"):
        "PostgreSQL wakes other processes by LISTEN/NOTIFY, SQLite by polling",
    ("postgres", "queries.sql", "message_insert_notify"):
        "SQLite bumps its signal row in the send's transaction (signal_bump)",
    ("postgres", "queries.sql", "message_insert_fifo"):
        "SQLite takes sequence numbers with counter_take, then message_insert",
    ("postgres", "queries.sql", "message_dead_letter_ids"):
        "SQLite dead-letters over-received flow nodes in the receive's own transaction",
    ("postgres", "queries.sql", "fifo_lock"):
        "SQLite's BEGIN IMMEDIATE already admits one writer at a time",
    ("sqlite", "jobs.sql", "rate_get"): "the GCRA take in Python between two statements",
    ("sqlite", "jobs.sql", "rate_put"): "the GCRA take in Python between two statements",
    ("postgres", "jobs.sql", "rate_take"): "the GCRA take as one upsert",
    ("sqlite", "jobs.sql", "slot_held"): "slot accounting in Python between two statements",
    ("sqlite", "jobs.sql", "slot_put"): "slot accounting in Python between two statements",
    ("postgres", "jobs.sql", "slot_acquire"): "slot accounting in one function call",
    ("postgres", "flows.sql", "flow_children"):
        "a chord's dense children read by one range scan; SQLite probes in-process",
    ("postgres", "flows.sql", "flow_node_range"):
        "a chord's dense children read by one range scan; SQLite probes in-process",
}


FILES_ONLY_IN: dict[tuple[str, str], str] = {
    # (dialect, file): why the other dialect has no such file (its queries are exempt)
    ("postgres", "maintenance.sql"):
        "rotation of the message slots and targeted VACUUM; SQLite has no dead rows and "
        "keeps its file bounded with PRAGMAs (sqlite_maintenance.py)",
    ("postgres", "notify_tx.sql"):
        "the notifier's enqueue as one statement; SQLite runs ledger.sql's and "
        "queries.sql's statements by name in one BEGIN IMMEDIATE (sqlite_notify_tx.py)",
}


def files_of(dialect: str) -> set[str]:
    """The .sql files beside a dialect's code (not migrations)."""
    folder = resources.files(f"conveyor.storage.{dialect}")
    return {item.name for item in folder.iterdir() if item.name.endswith(".sql")}


def sql_files() -> list[str]:
    """The .sql files that every dialect has."""
    return sorted(set.intersection(*(files_of(d) for d in DIALECTS)))


def test_both_dialects_have_the_same_sql_files() -> None:
    every = set.union(*(files_of(d) for d in DIALECTS))
    for dialect in DIALECTS:
        for filename in sorted(every - files_of(dialect)):
            owner = next(d for d in DIALECTS if filename in files_of(d))
            assert (owner, filename) in FILES_ONLY_IN, (
                f"{owner}/{filename} has no {dialect} counterpart: add one with the same "
                "query names, or list it in FILES_ONLY_IN with the reason")


@pytest.mark.parametrize("filename", sql_files())
def test_same_query_names(filename: str) -> None:
    queries = {d: load_queries(f"conveyor.storage.{d}", filename) for d in DIALECTS}
    for dialect, own in queries.items():
        others = set().union(*(set(q) for d, q in queries.items() if d != dialect))
        for name in sorted(set(own) - others):
            assert (dialect, filename, name) in ONLY_IN, (
                f"{filename}: query {name!r} exists in {dialect} only; add it to the other "
                "dialect, or list it in ONLY_IN with the reason and comment it")
            assert own[name].startswith(f"-- Only in {DIALECTS[dialect]}"), (
                f"{dialect}/{filename}: {name!r} must start with '-- Only in "
                f"{DIALECTS[dialect]}: why'")


def test_allow_list_is_current() -> None:
    """An entry whose query now exists in both dialects (or nowhere) goes."""
    for dialect, filename, name in ONLY_IN:
        own = load_queries(f"conveyor.storage.{dialect}", filename)
        other = next(d for d in DIALECTS if d != dialect)
        assert name in own, (dialect, filename, name)
        assert name not in load_queries(f"conveyor.storage.{other}", filename), (
            dialect, filename, name)
