"""Answering a prompt with a streamed model reply, stored as a message.

Naive: one transaction around everything: the reply's row is inserted, the model streams for
seconds, then the text and its tokens are written; the connection sits "idle in transaction"
throughout, so a handful of concurrent streams hold the whole pool and every other request waits.
Fixed: the same statements (fixes/streaming_txn.sql), but the INSERT commits on its own, no
connection is held while the model talks, and the final writes are one short transaction.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from pglab.lab.trial.service.paths import statements

PREDICTED = ("no_idle_in_transaction", "p99_under_slo")
ENDPOINTS = ("GET /conversations/[id]/messages",)  # the readers starved of connections; a stream is slow by design
PROBES = (("POST", "/conversations/2/stream", {"user_id": 3, "prompt": "one two"}),)


async def naive(service: Any, conversation_id: int, user_id: int, prompt: str) -> AsyncIterator[str]:
    insert, finish, charge = statements(__name__, "naive")
    async with service.connection() as conn, conn.transaction():
        reply_id = await _insert(conn, insert, conversation_id, user_id)
        reply = []
        async for chunk in service.generate(prompt):
            reply.append(chunk)
            yield chunk
        tokens = await service.count_tokens("".join(reply))
        await conn.execute(finish, {"body": "".join(reply), "tokens": tokens, "id": reply_id})
        await conn.execute(charge, {"tokens": tokens, "user_id": user_id})


async def fixed(service: Any, conversation_id: int, user_id: int, prompt: str) -> AsyncIterator[str]:
    insert, finish, charge = statements(__name__, "fixed")
    async with service.connection() as conn:
        reply_id = await _insert(conn, insert, conversation_id, user_id)
    reply = []
    async for chunk in service.generate(prompt):
        reply.append(chunk)
        yield chunk
    tokens = await service.count_tokens("".join(reply))
    async with service.connection() as conn, conn.transaction():
        await conn.execute(finish, {"body": "".join(reply), "tokens": tokens, "id": reply_id})
        await conn.execute(charge, {"tokens": tokens, "user_id": user_id})


async def _insert(conn: Any, insert: str, conversation_id: int, user_id: int) -> int:
    row = await (await conn.execute(insert, {"conversation_id": conversation_id, "user_id": user_id})).fetchone()
    return int(row[0])


class Prompt(BaseModel):
    user_id: int
    prompt: str


def routes(router: APIRouter, service: Any, impl: Any) -> None:
    @router.post("/conversations/{conversation_id}/stream")
    async def stream_reply(conversation_id: int, ask: Prompt) -> StreamingResponse:
        chunks = impl(service, conversation_id, ask.user_id, ask.prompt)
        first = await anext(chunks)  # before the headers: no connection to be had is still a clean 503

        async def rest() -> AsyncIterator[str]:
            yield first
            async for chunk in chunks:
                yield chunk

        return StreamingResponse(rest(), media_type="text/plain")
