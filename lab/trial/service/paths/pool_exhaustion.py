"""How a request gets its connection.

Naive: a fresh connection per request. Nothing bounds how many the service opens at once, so under
load it opens more than the server's max_connections and the surplus is refused ("sorry, too many
clients already"); each one also pays a backend start-up.
Fixed: one shared pool with a fixed upper bound below max_connections; a request that finds it
busy waits (up to the pool timeout) instead of being refused.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg

ROLE = "connection"  # every route gets its connection this way
PREDICTED = ("no_refused_connections", "error_rate_under_budget")
ENDPOINTS = ()  # every endpoint: all of them need a connection
PROBES = (("GET", "/conversations/1/messages", None), ("GET", "/users/4/conversations", None))


@asynccontextmanager
async def naive(db: Any) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    conn = await db.connect()
    try:
        yield conn
    finally:
        await conn.close()


@asynccontextmanager
async def fixed(db: Any) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    async with db.pooled() as conn:
        yield conn
