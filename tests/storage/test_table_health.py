"""`table_health`: how big conveyor's tables are and how much is dead weight, on both
drivers (what /metrics and the dashboard's Storage section show)."""

from __future__ import annotations

from conveyor.storage.base import Storage
from tests.storage.conftest import make_queue, send


async def test_table_health_names_the_message_storage(storage: Storage, t0: int) -> None:
    queue = await make_queue(storage, "q", t0)
    await send(storage, queue, t0, ["x" * 500] * 200)
    tables = {t.table: t for t in await storage.table_health()}
    if storage.dialect == "postgresql":
        messages = tables["conveyor_messages"]  # the slots summed under their parent
        assert messages.bytes > 200 * 500 and messages.live_rows is not None
        assert not any(name.startswith("conveyor_messages_s") for name in tables)
    else:
        database = tables["database"]
        assert database.live_rows is None and database.bytes + tables["wal"].bytes > 200 * 500
    assert all(t.bytes >= 0 and t.dead_rows >= 0 and t.free_bytes >= 0 for t in tables.values())
