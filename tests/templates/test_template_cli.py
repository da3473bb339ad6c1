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


def test_notify_send_locale_and_a_worker_without_template_files(database_url: str,
                                                                tmp_path: Path) -> None:
    """`conveyor notify send --locale pt-BR` with a stored template; `conveyor notify
    worker` (no --templates) renders it from the database."""
    from conveyor.demo.loopback import SmtpSink
    from tests.notify.helpers import smtp_server

    db = ["--database", database_url]
    assert _conveyor("template", "put", "welcome", "--json", json.dumps(WELCOME), *db,
                     cwd=tmp_path).returncode == 0
    bad = _conveyor("notify", "send", "--channel", "email", "--to", "a@example.com",
                    "--template", "welcome", "--locale", "not a tag", *db, cwd=tmp_path)
    assert bad.returncode == 1 and "[invalid_input]" in bad.stderr
    for to, locale in (("a@example.com", "pt-BR"), ("b@example.com", "pt-PT")):
        sent = _conveyor("notify", "send", "--channel", "email", "--to", to, "--template",
                         "welcome", "--data", '{"name": "Ana"}', "--locale", locale, *db,
                         cwd=tmp_path)
        assert sent.returncode == 0, sent.stderr
    sink = SmtpSink()
    with smtp_server(sink) as port:
        done = _conveyor("notify", "worker", "--smtp", f"127.0.0.1:{port}", *db,
                         "--seconds", "4", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    bodies = {rcpt: data for _, rcpt, data in sink.messages}
    assert set(bodies) == {"a@example.com", "b@example.com"}
    assert b"Oi Ana" in bodies["a@example.com"]
    assert "Olá Ana".encode() in bodies["b@example.com"] or \
        b"Ol=C3=A1 Ana" in bodies["b@example.com"]
