"""Reading a conversation with the name of each message's author.

Naive: the messages first, then one `SELECT name FROM users` per message: 101 round trips per page.
Fixed: one query joining users.
"""

from __future__ import annotations

from typing import Any

import psycopg

PAGE = 100


async def naive(conn: psycopg.AsyncConnection[Any], conversation_id: int) -> list[dict[str, Any]]:
    cursor = await conn.execute(
        "SELECT id, user_id, body, created_at FROM messages WHERE conversation_id = %s"
        " ORDER BY created_at DESC LIMIT %s", (conversation_id, PAGE))
    messages = []
    for message_id, user_id, body, created_at in await cursor.fetchall():
        author = await (await conn.execute("SELECT name FROM users WHERE id = %s", (user_id,))).fetchone()
        messages.append({"id": message_id, "author": author[0] if author else None, "body": body,
                         "created_at": created_at})
    return messages


async def fixed(conn: psycopg.AsyncConnection[Any], conversation_id: int) -> list[dict[str, Any]]:
    cursor = await conn.execute(
        "SELECT m.id, u.name, m.body, m.created_at FROM messages m JOIN users u ON u.id = m.user_id"
        " WHERE m.conversation_id = %s ORDER BY m.created_at DESC LIMIT %s", (conversation_id, PAGE))
    return [{"id": message_id, "author": author, "body": body, "created_at": created_at}
            for message_id, author, body, created_at in await cursor.fetchall()]
