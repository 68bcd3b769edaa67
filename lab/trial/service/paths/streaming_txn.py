"""Answering a prompt with a streamed model reply, stored as two messages (prompt and reply).

Naive: one transaction around everything, so the connection sits "idle in transaction" for the
seconds the model takes; a handful of concurrent streams hold the whole pool and every other
request waits for a connection.
Fixed: two short transactions, one before and one after the stream, holding no connection while
the model talks.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pglab.lab.trial.service.app import Service


async def naive(service: Service, conversation_id: int, user_id: int, prompt: str) -> AsyncIterator[str]:
    async with service.db.connection() as conn, conn.transaction():
        await service.record_message(conn, conversation_id, user_id, prompt)
        reply = []
        async for chunk in service.generate(prompt):
            reply.append(chunk)
            yield chunk
        await service.record_message(conn, conversation_id, user_id, "".join(reply))


async def fixed(service: Service, conversation_id: int, user_id: int, prompt: str) -> AsyncIterator[str]:
    async with service.db.connection() as conn, conn.transaction():
        await service.record_message(conn, conversation_id, user_id, prompt)
    reply = []
    async for chunk in service.generate(prompt):
        reply.append(chunk)
        yield chunk
    async with service.db.connection() as conn, conn.transaction():
        await service.record_message(conn, conversation_id, user_id, "".join(reply))
