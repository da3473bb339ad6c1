"""`conveyor template put|get|list|preview|delete` as subprocesses, on both backends."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.templates.test_templates_api import WELCOME


def _conveyor(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "conveyor.cli.main", *args],
                          capture_output=True, text=True, timeout=60, cwd=cwd,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})


def test_put_get_list_preview_delete(database_url: str, tmp_path: Path) -> None:
    db = ["--database", database_url]
    doc = tmp_path / "welcome.json"
    doc.write_text(json.dumps(WELCOME), encoding="utf-8")
    put = _conveyor("template", "put", "welcome", "--file", str(doc), *db, cwd=tmp_path)
    assert put.returncode == 0, put.stderr
    stored = json.loads(put.stdout)
    assert stored["locales"]["pt-BR"]["text"] == "Oi {{ name }}"
    got = _conveyor("template", "get", "welcome", *db, cwd=tmp_path)
    assert got.returncode == 0 and json.loads(got.stdout) == stored
    bad = _conveyor("template", "put", "welcome", "--json",
                    '{"locales": {"en": {"text": "x\\n{{ y"}}}', *db, cwd=tmp_path)
    assert bad.returncode == 1
    assert "locales.en.text line 2" in bad.stderr and "[invalid_template]" in bad.stderr
    assert _conveyor("recipient", "put", "ana", "--locale", "pt-BR", "--email",
                     "ana@example.com", *db, cwd=tmp_path).returncode == 0
    shown = _conveyor("template", "preview", "welcome", "--recipient", "ana", "--data",
                      '{"name": "Ana"}', *db, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["channels"] == {"email": {
        "locale": "pt-BR", "subject": "Bem-vindo, Ana", "text": "Oi Ana", "html": None}}
    other = _conveyor("template", "preview", "welcome", "--locale", "de", "--channel",
                      "push", "--data", '{"name": "Jo"}', *db, cwd=tmp_path)
    assert json.loads(other.stdout)["channels"]["push"]["text"] == "Jo, hello"
    missing = _conveyor("template", "preview", "welcome", "--recipient", "ana", *db,
                        cwd=tmp_path)
    assert missing.returncode == 1 and "undefined" in missing.stderr
    listed = _conveyor("template", "list", *db, cwd=tmp_path)
    assert [json.loads(line)["name"] for line in listed.stdout.splitlines()] == ["welcome"]
    assert _conveyor("template", "delete", "welcome", *db, cwd=tmp_path).returncode == 0
    gone = _conveyor("template", "get", "welcome", *db, cwd=tmp_path)
    assert gone.returncode == 1 and "no template" in gone.stderr
