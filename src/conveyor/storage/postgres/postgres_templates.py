"""PostgreSQL half of the templates table: a mixin of `PostgresStorage`."""

from __future__ import annotations

import orjson

from conveyor.locales import LocalizedTemplate, template_doc, template_from_doc
from conveyor.storage.postgres.postgres_base import PostgresBase
from conveyor.storage.sql import load_queries

Q = load_queries("conveyor.storage.postgres", "templates.sql")


class PostgresTemplates(PostgresBase):
    """Templates in PostgreSQL."""

    async def template_put(self, template: LocalizedTemplate, now: int | None) -> int:
        """Insert or replace one template; returns its `updated_at`."""
        doc = template_doc(template)
        del doc["updated_at"]
        row = await self._fetchrow(Q["template_put"], template.name,
                                   orjson.dumps(doc).decode(), now)
        return int(row[0])

    async def template_get(self, name: str) -> LocalizedTemplate | None:
        """One template by name."""
        row = await self._fetchrow(Q["template_get"], name)
        return template_from_doc(orjson.loads(row[0]), int(row[1])) if row else None

    async def template_delete(self, name: str) -> bool:
        """Delete one row."""
        return await self._execute(Q["template_delete"], name) > 0

    async def template_list(self, after: str, limit: int) -> list[LocalizedTemplate]:
        """Templates by name after `after`."""
        return [template_from_doc(orjson.loads(r[0]), int(r[1]))
                for r in await self._fetch(Q["template_list"], after, limit)]
