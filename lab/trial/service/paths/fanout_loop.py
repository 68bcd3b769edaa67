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
# Measured, not tuned. With a fixed 10,000 notifications a second (10 broadcasts a second at small),
# a faster 2-core machine (AMD EPYC) kept the naive p99 at 140 ms against 17, inside the SLO, and at
# medium (one broadcast a second) a hold held too few broadcasts to judge. With the broadcasts a second
# measured on the machine at hand (half of what the fixed service completes flat out with one read
# for every broadcast, `loads/fanout_loop.py`): 105 requests/s offered, half of them broadcasts; naive
# p99 5,000 (5,000-5,200) ms against 59 (48-100), 85x, cured in 3 of 3 at small, and the readers beside
# the naive broadcasts waited 630-890 ms against 13-24
# (`python tests/bench/lab_bench.py --scale small --duration 8 --repeat 3 --no-ceiling ID`).
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
