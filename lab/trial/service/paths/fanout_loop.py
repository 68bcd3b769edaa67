"""Broadcasting a notification to every user.

Naive: one INSERT per recipient in a loop, inside one transaction: thousands of round trips while
the transaction and its connection stay busy.
Fixed: one `INSERT ... SELECT` that lets the server produce every row.
"""

from __future__ import annotations

from typing import Any

import psycopg


async def naive(conn: psycopg.AsyncConnection[Any], kind: str) -> int:
    async with conn.transaction():
        recipients = await (await conn.execute("SELECT id FROM users")).fetchall()
        for (user_id,) in recipients:
            await conn.execute("INSERT INTO notifications (user_id, kind) VALUES (%s, %s)", (user_id, kind))
    return len(recipients)


async def fixed(conn: psycopg.AsyncConnection[Any], kind: str) -> int:
    cursor = await conn.execute("INSERT INTO notifications (user_id, kind) SELECT id, %s FROM users", (kind,))
    return cursor.rowcount
