"""SQLite half of the templates table: a mixin of `SqliteStorage`."""

from __future__ import annotations

import sqlite3

import orjson

from conveyor.locales import LocalizedTemplate, template_doc, template_from_doc
from conveyor.storage.sql import load_queries
from conveyor.storage.sqlite.sqlite_base import SqliteBase

Q = load_queries("conveyor.storage.sqlite", "templates.sql")


class SqliteTemplates(SqliteBase):
    """Templates in SQLite."""

    async def template_put(self, template: LocalizedTemplate, now: int | None) -> int:
        """Insert or replace one template; returns its `updated_at`."""
        doc = template_doc(template)
        del doc["updated_at"]
        params = {"name": template.name, "doc": orjson.dumps(doc).decode(),
                  "now": self._now(now)}

        def run(db: sqlite3.Connection) -> int:
            with self._write(db):
                return int(db.execute(Q["template_put"], params).fetchone()[0])
        return await self._run(run)

    async def template_get(self, name: str) -> LocalizedTemplate | None:
        """One template by name."""
        def run(db: sqlite3.Connection) -> LocalizedTemplate | None:
            row = db.execute(Q["template_get"], {"name": name}).fetchone()
            return template_from_doc(orjson.loads(row[0]), int(row[1])) if row else None
        return await self._run(run)

    async def template_delete(self, name: str) -> bool:
        """Delete one row."""
        def run(db: sqlite3.Connection) -> bool:
            with self._write(db):
                return db.execute(Q["template_delete"], {"name": name}).rowcount > 0
        return await self._run(run)

    async def template_list(self, after: str, limit: int) -> list[LocalizedTemplate]:
        """Templates by name after `after`."""
        params = {"after": after, "limit": limit}
        return await self._run(lambda db: [
            template_from_doc(orjson.loads(r[0]), int(r[1]))
            for r in db.execute(Q["template_list"], params)])
