"""Orders processed by a cluster of worker processes on PostgreSQL: PENDING -> COMPLETED.

    conveyor worker orders:app --processes 3     # ORDERS_DATABASE_URL=postgresql://...

The queue and the orders share one PostgreSQL database. Each run of `process_order` is
logged in `order_runs`, so `run.py` can show that no order ran twice and none was left.
"""

from __future__ import annotations

import os

import asyncpg

from conveyor import App

DATABASE_URL = os.environ.get("ORDERS_DATABASE_URL", "postgresql://localhost/orders")
app = App(DATABASE_URL)

_pool: asyncpg.Pool | None = None

SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    id integer PRIMARY KEY,
    status text NOT NULL DEFAULT 'PENDING',
    completed_by integer
);
CREATE TABLE IF NOT EXISTS order_runs (
    order_id integer NOT NULL,
    pid integer NOT NULL
);
"""


async def pool() -> asyncpg.Pool:
    """This process's connection pool (made on first use)."""
    global _pool
    if _pool is None:
        _pool = await asyncpg.create_pool(DATABASE_URL, min_size=1, max_size=5)
    return _pool


@app.task(queue="orders", concurrency=10)
async def process_order(order_id: int) -> None:
    """Complete one order (charging, shipping... would happen here)."""
    async with (await pool()).acquire() as db, db.transaction():
        await db.execute("INSERT INTO order_runs (order_id, pid) VALUES ($1, $2)",
                         order_id, os.getpid())
        await db.execute("UPDATE orders SET status = 'COMPLETED', completed_by = $2 "
                         "WHERE id = $1 AND status = 'PENDING'", order_id, os.getpid())
