"""`conveyor schedules MODULE:APP`: an App's schedules with their next run, without a server."""

from __future__ import annotations

from pathlib import Path

import orjson

from tests.cli.conftest import run_conveyor

APP = '''
from conveyor import App

app = App("sqlite:///never-opened.db")

@app.cron("*/10 * * * * *", queue="fine")
def ten() -> None: ...

@app.cron("0 9 * * 1-5", tz="Europe/Paris")
def morning() -> None: ...

@app.cron(every=90)
def ninety() -> None: ...
'''


def test_schedules_lists_each_with_its_next_run(tmp_path: Path) -> None:
    (tmp_path / "schedapp.py").write_text(APP)
    table = run_conveyor("schedules", "schedapp:app", cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split() == ["TASK", "QUEUE", "SCHEDULE", "NEXT", "RUN"]
    assert [r.split()[0] for r in rows] == ["ten", "morning", "ninety"]
    found = [orjson.loads(line) for line in run_conveyor(
        "schedules", "schedapp:app", "-o", "json", cwd=tmp_path).stdout.splitlines()]
    ten, morning, ninety = found
    assert ten["schedule"] == "*/10 * * * * * (UTC)" and ten["next_run_ms"] % 10_000 == 0
    assert morning["schedule"] == "0 9 * * 1-5 (Europe/Paris)"
    assert "T09:00:00+0" in morning["next_run"]  # 9 a.m. in Paris, winter or summer
    assert ninety["schedule"] == "every 90 s" and ninety["next_run_ms"] % 90_000 == 0
    assert not (tmp_path / "never-opened.db").exists()  # listing opens no database
    bad = run_conveyor("schedules", "nosuchmodule:app", cwd=tmp_path)
    assert bad.returncode != 0
    assert "No module named 'nosuchmodule'" in bad.stderr and "Traceback" not in bad.stderr
