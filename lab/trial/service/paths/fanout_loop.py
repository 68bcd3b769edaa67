"""Broadcasting a notification to every user.

Naive: one INSERT per recipient in a loop, inside one transaction: thousands of round trips while
the transaction and its connection stay busy.
Fixed: one `INSERT ... SELECT` that lets the server produce every row.
"""

from __future__ import annotations

from typing import Any

import psycopg
from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel

from pglab.lab.trial.service.paths import statements

PREDICTED = ("p99_under_slo",)
ENDPOINTS = ("POST /broadcast",)
PROBES = (("POST", "/broadcast", {"kind": "probe"}),)


async def naive(conn: psycopg.AsyncConnection[Any], kind: str) -> int:
    recipients, insert = statements(__name__, "naive")
    async with conn.transaction():
        users = await (await conn.execute(recipients)).fetchall()
        for (user_id,) in users:
            await conn.execute(insert, {"user_id": user_id, "kind": kind})
    return len(users)


async def fixed(conn: psycopg.AsyncConnection[Any], kind: str) -> int:
    (fanout,) = statements(__name__, "fixed")
    cursor = await conn.execute(fanout, {"kind": kind})
    return cursor.rowcount


class Broadcast(BaseModel):
    kind: str


def routes(router: APIRouter, service: Any, impl: Any) -> None:
    @router.post("/broadcast")
    async def broadcast(message: Broadcast) -> Response:
        async with service.connection() as conn:
            count = await impl(conn, message.kind)
        return service.respond({"recipients": count}, status=201)
