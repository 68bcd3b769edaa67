"""A conversation's latest messages with the running total of tokens spent up to each one.

Naive: a scalar subquery per row sums every earlier message of the conversation: O(N²) rows read
in the conversation's length, which is fine on a cold conversation and ruinous on a hot one.
Fixed: a window function reads the conversation once.
"""

from __future__ import annotations

from typing import Any

import psycopg

PAGE = 200


async def naive(conn: psycopg.AsyncConnection[Any], conversation_id: int) -> list[dict[str, Any]]:
    cursor = await conn.execute(
        "SELECT m.id, m.tokens,"
        " (SELECT sum(e.tokens) FROM messages e WHERE e.conversation_id = m.conversation_id AND e.id <= m.id)"
        " FROM messages m WHERE m.conversation_id = %s ORDER BY m.id DESC LIMIT %s", (conversation_id, PAGE))
    return _rows(await cursor.fetchall())


async def fixed(conn: psycopg.AsyncConnection[Any], conversation_id: int) -> list[dict[str, Any]]:
    cursor = await conn.execute(
        "SELECT id, tokens, running_total FROM"
        " (SELECT id, tokens, sum(tokens) OVER (ORDER BY id) AS running_total"
        "  FROM messages WHERE conversation_id = %s) AS totals"
        " ORDER BY id DESC LIMIT %s", (conversation_id, PAGE))
    return _rows(await cursor.fetchall())


def _rows(rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    return [{"id": message_id, "tokens": tokens, "running_total": total} for message_id, tokens, total in rows]
