"""An integration (CI, alerting, a deploy bot) posts a message into a conversation through an
incoming webhook: a one-line summary, and the event's JSON payload kept as the message's metadata.

The code is the same on both sides: one INSERT. The anti-pattern is in the schema (`setup` in
fixes/write_amplification.sql): besides the primary key and the indexes the service's reads use,
the messages table carries `(conversation_id)` (a leading prefix of `(conversation_id, created_at)`:
whatever it could serve, the wider index serves), `(tokens)` (no query filters by it) and a GIN
index over `metadata` (kept "in case we search it"; nobody does). Every INSERT writes an entry into
each of them, and each entry is WAL: the GIN index alone takes an entry per key and per value of
the payload. The fix (`migrate`) drops the three; the INSERT stays as it was.
"""

from __future__ import annotations

from typing import Any

import psycopg
from fastapi import APIRouter
from fastapi.responses import Response
from psycopg.types.json import Jsonb
from pydantic import BaseModel

from pglab.lab.trial.service.paths import statements

PREDICTED = ("wal_bytes_per_write_under_budget",)
ENDPOINTS = ("POST /conversations/[id]/webhook",)
_EVENT = {"source": "ci", "event": "workflow_run", "repository": "chat/service", "branch": "main",
          "commit": "9fceb02d0ae598e95dc970b74767f19372d61af8", "status": "completed", "conclusion": "failure",
          "run_id": 4211, "run_attempt": 1, "actor": "deploy-bot", "workflow": "tests",
          "duration_s": 312, "url": "https://ci.example.com/chat/service/runs/4211"}
PROBES = (("POST", "/conversations/3/webhook", {"user_id": 7, "body": "tests failed on main", "metadata": _EVENT}),
          ("POST", "/conversations/1/webhook", {"user_id": 8, "body": "deployed to staging", "metadata": {}}))


async def naive(conn: psycopg.AsyncConnection[Any], conversation_id: int, user_id: int, body: str,
                metadata: dict[str, Any]) -> dict[str, Any]:
    (insert,) = statements(__name__, "naive")
    values = {"conversation_id": conversation_id, "user_id": user_id, "body": body, "metadata": Jsonb(metadata)}
    row = await (await conn.execute(insert, values)).fetchone()
    return {"id": row[0] if row else None}


async def fixed(conn: psycopg.AsyncConnection[Any], conversation_id: int, user_id: int, body: str,
                metadata: dict[str, Any]) -> dict[str, Any]:
    (insert,) = statements(__name__, "fixed")
    values = {"conversation_id": conversation_id, "user_id": user_id, "body": body, "metadata": Jsonb(metadata)}
    row = await (await conn.execute(insert, values)).fetchone()
    return {"id": row[0] if row else None}


class Hook(BaseModel):
    user_id: int
    body: str
    metadata: dict[str, Any] = {}


def routes(router: APIRouter, service: Any, impl: Any) -> None:
    @router.post("/conversations/{conversation_id}/webhook")
    async def webhook(conversation_id: int, hook: Hook) -> Response:
        async with service.connection() as conn:
            return service.respond(await impl(conn, conversation_id, hook.user_id, hook.body, hook.metadata),
                                   status=201)
