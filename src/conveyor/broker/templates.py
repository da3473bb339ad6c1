"""Templates per locale as a broker operation (`broker.templates`): put, get, delete, list.

Input is checked here, once, by `conveyor.locales.parse_template` (a syntax error names
the part and its line); storage runs thin SQL. Rendering is the notify room's
(`conveyor.notify.locales`), which reads templates through `get`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from conveyor.errors import InvalidInput
from conveyor.locales import LocalizedTemplate, check_name, parse_template

if TYPE_CHECKING:
    from conveyor.broker.broker import Broker

__all__ = ["StoredTemplates"]

MAX_LIST = 1000


class StoredTemplates:
    """Create, replace, read, list and delete templates (`broker.templates`)."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker

    async def put(self, name: str, doc: Mapping[str, Any]) -> LocalizedTemplate:
        """Create or replace a template from its JSON form; returns it as stored."""
        # In a worker thread: parsing a document of many large parts takes seconds of CPU
        # (0.75 s for a 250 KB part), which must not be the event loop's.
        template = await asyncio.to_thread(parse_template, name, doc)
        if "name" in doc and doc["name"] != name:
            raise InvalidInput(f"The body names template {doc['name']!r:.60}, the path "
                               f"{name!r}.", field="name")
        at = await self._broker.storage.template_put(template, self._broker.now())
        return replace(template, updated_at=at)

    async def get(self, name: str) -> LocalizedTemplate | None:
        """One template, or None."""
        return await self._broker.storage.template_get(check_name(name))

    async def delete(self, name: str) -> bool:
        """Delete a template; True when it existed."""
        return await self._broker.storage.template_delete(check_name(name))

    async def list(self, after: str = "", limit: int = 100) -> list[LocalizedTemplate]:
        """Templates by name, `limit` (1 to 1,000) after the name `after`."""
        if not isinstance(after, str) or len(after) > 100:
            raise InvalidInput("after must be a template name.", field="after")
        if isinstance(limit, bool) or not isinstance(limit, int) or \
                not 1 <= limit <= MAX_LIST:
            raise InvalidInput(f"limit must be between 1 and {MAX_LIST}.", field="limit")
        return await self._broker.storage.template_list(after, limit)
