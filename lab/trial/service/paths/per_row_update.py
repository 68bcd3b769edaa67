"""Marking all of a user's notifications as read.

Naive: list the unread ids, then one `UPDATE ... WHERE id = %s` per id, in one transaction: a
user with two thousand unread notifications costs two thousand round trips, while the
transaction holds a pooled connection and every row it has marked so far.
Fixed: one set-based `UPDATE ... WHERE user_id = %s AND read_at IS NULL`: one round trip, the
same rows changed, and no list carried to the application and back. (When the client picks the
rows, send their ids as one array: `UPDATE ... WHERE id = ANY(%s) AND user_id = %s`.)
"""

from __future__ import annotations

from typing import Any

import psycopg
from fastapi import APIRouter
from fastapi.responses import Response

from pglab.lab.trial.service.paths import statements

PREDICTED = ("p99_under_slo",)
ENDPOINTS = ("POST /users/[id]/notifications/read",)
# Measured, not tuned (3 repeats each). On a slower 2-core machine, at small scale the naive p99
# was 1,500, 240 and 1,200 ms against 18-28 ms fixed, under the 250 ms SLO in one repeat of three;
# at medium (users with thousands unread) 4,600 (4,600-4,700) against 180 (97-200), cured in 3 of 3.
# On a faster one (AMD EPYC, 2026-12-01), at small: 1,100 (1,100-1,500) against 12 (12-20), 92x,
# cured in 3 of 3, the hold's worst seconds at 1,600-1,800 ms in every repeat: the harm is each busy
# user's own thousand round trips, which a slower machine only lengthens, so the live test runs at
# small (`python tests/bench/lab_bench.py --scale S --duration 8 --repeat 3 --no-ceiling ID`).
PROBES = (("POST", "/users/2/notifications/read", None), ("POST", "/users/40/notifications/read", None),
          ("POST", "/users/999/notifications/read", None))


async def naive(conn: psycopg.AsyncConnection[Any], user_id: int) -> int:
    unread, mark = statements(__name__, "naive")
    ids = [row[0] for row in await (await conn.execute(unread, {"user_id": user_id})).fetchall()]
    for notification_id in ids:
        await conn.execute(mark, {"id": notification_id})
    return len(ids)


async def fixed(conn: psycopg.AsyncConnection[Any], user_id: int) -> int:
    (mark_all,) = statements(__name__, "fixed")
    cursor = await conn.execute(mark_all, {"user_id": user_id})
    return cursor.rowcount


def routes(router: APIRouter, service: Any, impl: Any) -> None:
    @router.post("/users/{user_id}/notifications/read")
    async def mark_read(user_id: int) -> Response:
        async with service.connection() as conn, conn.transaction():
            marked = await impl(conn, user_id)
        return service.respond({"marked": marked})
