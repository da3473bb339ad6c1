"""`conveyor recipient put|get|delete|import` as subprocesses, on both backends."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def _conveyor(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "conveyor.cli.main", *args],
                          capture_output=True, text=True, timeout=60, cwd=cwd,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})


def test_put_get_import(database_url: str, tmp_path: Path) -> None:
    db = ["--database", database_url]
    put = _conveyor("recipient", "put", "ann", "--timezone", "Europe/Berlin",
                    "--email", "ann@example.com", "--fcm", "tok-1", "--opt-out",
                    "marketing:email", "--opt-in", "digest:fcm", "--quiet", "22:00-07:00",
                    *db, cwd=tmp_path)
    assert put.returncode == 0, put.stderr
    stored = json.loads(put.stdout)
    assert stored["preferences"] == {"marketing": {"email": False}, "digest": {"fcm": True}}
    got = _conveyor("recipient", "get", "ann", *db, cwd=tmp_path)
    assert got.returncode == 0 and json.loads(got.stdout) == stored
    told = _conveyor("recipient", "notify", "ann", "--category", "marketing", "--template",
                     "hello", "--data", '{"n": 1}', *db, cwd=tmp_path)
    assert told.returncode == 0, told.stderr
    fates = {(d["channel"], d["status"]) for d in json.loads(told.stdout)["deliveries"]}
    # Opted out of marketing by email; quiet hours may or may not hold the fcm one now.
    assert ("email", "skipped") in fates and fates & {("fcm", "queued"), ("fcm", "held")}
    bad = _conveyor("recipient", "put", "ann", "--timezone", "Nowhere/Land", *db,
                    cwd=tmp_path)
    assert bad.returncode != 0 and "time zone" in bad.stderr
    assert json.loads(_conveyor("recipient", "get", "ann", *db, cwd=tmp_path).stdout) == stored

    csv_file = tmp_path / "people.csv"
    lines = ["id,timezone,email,quiet_hours"] + [
        f"p{i},America/New_York,p{i}@example.com,22:00-07:00" for i in range(3000)]
    csv_file.write_text("\n".join(lines) + "\n")
    load = _conveyor("recipient", "import", str(csv_file), "--batch", "1000", *db,
                     cwd=tmp_path)
    assert load.returncode == 0, load.stderr
    report = json.loads(load.stdout)
    assert report["imported"] == 3000 and report["per_second"] > 0
    assert "3,000 recipients" in load.stderr
    p2999 = json.loads(_conveyor("recipient", "get", "p2999", *db, cwd=tmp_path).stdout)
    assert p2999["addresses"] == {"email": ["p2999@example.com"]}

    jsonl = tmp_path / "more.jsonl"
    jsonl.write_text('{"id": "q1"}\n{"id": "q2", "locale": "!!"}\n')
    failed = _conveyor("recipient", "import", str(jsonl), *db, cwd=tmp_path)
    assert failed.returncode != 0 and "Line 2" in failed.stderr
    assert _conveyor("recipient", "get", "q1", *db, cwd=tmp_path).returncode == 1
    assert _conveyor("recipient", "delete", "ann", *db, cwd=tmp_path).returncode == 0
    assert _conveyor("recipient", "get", "ann", *db, cwd=tmp_path).returncode == 1


def test_notify_into_a_digest(database_url: str, tmp_path: Path) -> None:
    db = ["--database", database_url]
    assert _conveyor("recipient", "put", "ann", "--email", "ann@example.com", *db,
                     cwd=tmp_path).returncode == 0
    note = ["recipient", "notify", "ann", "--category", "comments", "--template", "c"]
    bad = _conveyor(*note, "--digest-key", "post-42", "--digest-window", "ten minutes", *db,
                    cwd=tmp_path)
    assert bad.returncode == 1 and "digest.window must be a duration" in bad.stderr
    half = _conveyor(*note, "--digest-key", "post-42", *db, cwd=tmp_path)
    assert half.returncode == 1 and "digest.window" in half.stderr
    for n in range(2):
        told = _conveyor(*note, "--data", json.dumps({"n": n}), "--digest-key", "post-42",
                         "--digest-window", "10m", *db, cwd=tmp_path)
        assert told.returncode == 0, told.stderr
        (only,) = json.loads(told.stdout)["deliveries"]
        assert (only["channel"], only["status"]) == ("email", "digested")
    counts = _conveyor("notify", "counts", *db, cwd=tmp_path)
    assert counts.returncode == 0 and '"digested": 2' in counts.stdout.replace("\n", "")
