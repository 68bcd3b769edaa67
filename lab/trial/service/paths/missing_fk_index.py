"""A moderator purges a spam account: its messages of the last hour go, with their notifications.

The code is the same on both sides; the fix is two indexes (`migrate` in fixes/missing_fk_index.sql),
one per foreign-key column the purge goes through. Without them the purge reads the whole messages
table to find the account's messages (messages.user_id), and every message it deletes makes the
foreign key from notifications.message_id look for rows still pointing at it: one sequential scan
of notifications per purged message, inside the purge's transaction.
The hour's limit keeps the lab's seeded messages (all older) out of reach: only what the load
posted is purged.
"""

from __future__ import annotations

from typing import Any

import psycopg
from fastapi import APIRouter
from fastapi.responses import Response

from pglab.lab.trial.service.paths import statements

PREDICTED = ("p99_under_slo",)
ENDPOINTS = ("POST /users/[id]/purge",)
# Measured, not tuned (quiet 2-core machine, 3 repeats each): with the small scale's 200,000
# notifications the naive side's p99 was 250-380 ms against 36-52 ms with the index, over the 250 ms
# SLO in two repeats of three (on a faster machine 180 ms, not reproduced): each unindexed
# foreign-key check scans a table a live service outgrows within months. At medium (a million
# notifications) it was 1,200 (1,100-1,300) ms against 54 (49-62), cured in 3 of 3. So the run seeds
# the table such a service has: a year of notification history nobody purged (about 1.0 million more
# rows, `seed.Scale.with_backlog`; the purge deletes none of them). At small, AMD EPYC, 2 cores:
# 1,200 (850-1,600) ms against 19 (18-24), 63x, cured in 3 of 3 (`python tests/bench/lab_bench.py
# --scale small --duration 8 --repeat 3 --no-ceiling ID`).
NOTIFICATION_BACKLOG_DAYS = 365
# Post twice as account 9, purge it (2 messages, their tokens given back), purge again (nothing left),
# and purge an account that posted nothing in the last hour.
PROBES = (("POST", "/conversations/4/messages", {"user_id": 9, "body": "buy cheap followers now"}),
          ("POST", "/conversations/12/messages", {"user_id": 9, "body": "cheap followers"}),
          ("POST", "/users/9/purge", None),
          ("POST", "/users/9/purge", None),
          ("POST", "/users/10/purge", None))


async def naive(conn: psycopg.AsyncConnection[Any], user_id: int) -> int:
    notifications, messages = statements(__name__, "naive")
    async with conn.transaction():
        await conn.execute(notifications, {"user_id": user_id})
        row = await (await conn.execute(messages, {"user_id": user_id})).fetchone()
    return int(row[0]) if row else 0


async def fixed(conn: psycopg.AsyncConnection[Any], user_id: int) -> int:
    notifications, messages = statements(__name__, "fixed")
    async with conn.transaction():
        await conn.execute(notifications, {"user_id": user_id})
        row = await (await conn.execute(messages, {"user_id": user_id})).fetchone()
    return int(row[0]) if row else 0


def routes(router: APIRouter, service: Any, impl: Any) -> None:
    @router.post("/users/{user_id}/purge")
    async def purge(user_id: int) -> Response:
        async with service.connection() as conn:
            return service.respond({"purged": await impl(conn, user_id)})
