"""Charging a posted message's tokens to its author's account.

Naive: read the balance, work out the new one in Python (after the tokenizer call), write it back.
Two posts by the same user that overlap both read the same balance, and the second write erases
the first: a lost update, silently, with no error anywhere.
Fixed: `UPDATE ... SET tokens_used = tokens_used + %(tokens)s`, which Postgres applies atomically
under the row lock.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel

from pglab.lab.trial.service.paths import statements

ROLE = "charge"  # every route that stores a message charges its author this way
PREDICTED = ("no_lost_updates",)
ENDPOINTS = ("POST /conversations/[id]/messages",)
PROBES = (("POST", "/conversations/3/messages", {"user_id": 5, "body": "four words in here"}),
          ("POST", "/conversations/1/messages", {"user_id": 5, "body": "and two"}))
Tokenizer = Callable[[str], Awaitable[int]]


async def naive(conn: psycopg.AsyncConnection[Any], user_id: int, body: str, count_tokens: Tokenizer) -> int:
    read, write = statements(__name__, "naive")
    balance = await (await conn.execute(read, {"user_id": user_id})).fetchone()
    tokens = await count_tokens(body)
    await conn.execute(write, {"new_total": (balance[0] if balance else 0) + tokens, "user_id": user_id})
    return tokens


async def fixed(conn: psycopg.AsyncConnection[Any], user_id: int, body: str, count_tokens: Tokenizer) -> int:
    (charge,) = statements(__name__, "fixed")
    tokens = await count_tokens(body)
    await conn.execute(charge, {"tokens": tokens, "user_id": user_id})
    return tokens


class Post(BaseModel):
    user_id: int
    body: str


def routes(router: APIRouter, service: Any, impl: Any) -> None:
    @router.post("/conversations/{conversation_id}/messages")
    async def post_message(conversation_id: int, post: Post) -> Response:
        async with service.connection() as conn, conn.transaction():
            stored = await service.record_message(conn, conversation_id, post.user_id, post.body)
        return service.respond(stored, status=201)
