"""A conversation's latest messages, looked up by conversation_id.

The code is the same on both sides; the fix is an index (`migrate` in fixes/missing_index.sql).
Without it every page is a sequential scan of the whole messages table.
"""

from __future__ import annotations

from typing import Any

import psycopg
from fastapi import APIRouter
from fastapi.responses import Response

from pglab.lab.trial.service.paths import statements

PREDICTED = ("p99_under_slo",)
ENDPOINTS = ("GET /conversations/[id]/messages",)
# On a faster 2-core machine (AMD EPYC, 2026-12-01: `pglab check` ran about 3x faster than the day
# before), naive p99 120 ms against 3 at small, inside the SLO: the seq scan of 200,000 messages
# keeps up with 160 req/s there. At medium 3,400 against 3, cured (`python tests/bench/lab_bench.py
# --scale S --duration 8 --repeat 1 --no-ceiling ID`, 2026-12-01).
# Since 2026-12-01 the load is measured on the machine at hand (the profile's CAPACITY_PROBE: half of
# what the reference fix completes flat out), so whether the harm shows no longer depends on how fast
# the machine is. On a fast 2-core machine (AMD EPYC): cured at small in 3 of 3, naive p99 5,600 (5,500-5,800)
# ms against 16 (13-73) with 668.0 req/s offered (`python tests/bench/lab_bench.py --scale small
# --duration 8 --repeat 3 --no-ceiling ID`).
PROBES = (("GET", "/conversations/1/messages", None), ("GET", "/conversations/9/messages", None),
          ("GET", "/conversations/1500/messages", None))


async def naive(conn: psycopg.AsyncConnection[Any], conversation_id: int) -> list[dict[str, Any]]:
    (query,) = statements(__name__, "naive")
    cursor = await conn.execute(query, {"conversation_id": conversation_id})
    return [{"id": i, "user_id": u, "body": b, "created_at": at} for i, u, b, at in await cursor.fetchall()]


async def fixed(conn: psycopg.AsyncConnection[Any], conversation_id: int) -> list[dict[str, Any]]:
    (query,) = statements(__name__, "fixed")
    cursor = await conn.execute(query, {"conversation_id": conversation_id})
    return [{"id": i, "user_id": u, "body": b, "created_at": at} for i, u, b, at in await cursor.fetchall()]


def routes(router: APIRouter, service: Any, impl: Any) -> None:
    @router.get("/conversations/{conversation_id}/messages")
    async def list_messages(conversation_id: int) -> Response:
        async with service.connection() as conn:
            return service.respond(await impl(conn, conversation_id))
