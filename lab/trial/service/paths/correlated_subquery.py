"""A conversation's latest messages with the running total of tokens spent up to each one.

Naive: a scalar subquery per row sums every earlier message of the conversation: O(N²) rows read
in the conversation's length, which is fine on a cold conversation and ruinous on a hot one.
Fixed: a window function reads the conversation once.
"""

from __future__ import annotations

from typing import Any

import psycopg
from fastapi import APIRouter
from fastapi.responses import Response

from pglab.lab.trial.service.paths import statements

PAGE = 200
PREDICTED = ("p99_under_slo",)
# Since 2026-12-01 the load is measured on the machine at hand (the profile's CAPACITY_PROBE: half of
# what the reference fix completes flat out), so whether the harm shows no longer depends on how fast
# the machine is. On a fast 2-core machine (AMD EPYC): cured at small in 3 of 3, naive p99 5,300
# (4,300-6,400) ms against 160 (82-190) with 204.0 req/s offered (`python tests/bench/lab_bench.py
# --scale small --duration 8 --repeat 3 --no-ceiling ID`).
ENDPOINTS = ("GET /conversations/[id]/tokens",)
PROBES = (("GET", "/conversations/1/tokens", None), ("GET", "/conversations/9/tokens", None))


async def naive(conn: psycopg.AsyncConnection[Any], conversation_id: int) -> list[dict[str, Any]]:
    (query,) = statements(__name__, "naive")
    cursor = await conn.execute(query, {"conversation_id": conversation_id, "page": PAGE})
    return [{"id": i, "tokens": tokens, "running_total": total} for i, tokens, total in await cursor.fetchall()]


async def fixed(conn: psycopg.AsyncConnection[Any], conversation_id: int) -> list[dict[str, Any]]:
    (query,) = statements(__name__, "fixed")
    cursor = await conn.execute(query, {"conversation_id": conversation_id, "page": PAGE})
    return [{"id": i, "tokens": tokens, "running_total": total} for i, tokens, total in await cursor.fetchall()]


def routes(router: APIRouter, service: Any, impl: Any) -> None:
    @router.get("/conversations/{conversation_id}/tokens")
    async def token_history(conversation_id: int) -> Response:
        async with service.connection() as conn:
            return service.respond(await impl(conn, conversation_id))
