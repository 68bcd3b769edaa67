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
# On a faster 2-core machine (AMD EPYC, 2026-12-01: `pglab check` ran about 3x faster than the day
# before), naive p99 140 ms against 17 at small, inside the SLO. At medium the profile offers the
# same notifications per second with ten times the users, so one broadcast a second: each took
# 930-950 ms naive against 60-67, but a hold of 5 s holds about 5 of them, fewer than the 10 an
# endpoint needs to be judged on its own (MIN_ENDPOINT_REQUESTS), and the readers beside them kept
# a p99 of 5 ms. The benchmark run called it cured, the live test's run did not
# (`python tests/bench/lab_bench.py --scale S --duration 8 --repeat 1 --no-ceiling ID`;
# `pytest tests/test_lab_run.py -k fanout_loop`).
KNOWN_FINDING = "on a fast machine the readers are not harmed, and medium holds too few broadcasts to judge them alone"
LIVE_SCALE = "medium"
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
