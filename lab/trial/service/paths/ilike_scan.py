"""Searching messages for a word with `ILIKE '%word%'`.

The code is the same on both sides; the fix is a trigram index (`migrate` in
fixes/ilike_scan.sql). Without it every search reads every message body.
"""

from __future__ import annotations

from typing import Any

import psycopg
from fastapi import APIRouter
from fastapi.responses import Response

from pglab.lab.trial.seed import rare_words, word
from pglab.lab.trial.service.paths import statements

PREDICTED = ("p99_under_slo",)
# Since 2026-12-01 the load is measured on the machine at hand (the profile's CAPACITY_PROBE: half of
# what the reference fix completes flat out), so whether the harm shows no longer depends on how fast
# the machine is. On a fast 2-core machine (AMD EPYC): cured at small in 3 of 3, naive p99 5,400
# (5,400-5,800) ms against 32 (24-38) with 242.0 req/s offered (`python tests/bench/lab_bench.py
# --scale small --duration 8 --repeat 3 --no-ceiling ID`).
ENDPOINTS = ("GET /search",)
PROBES = tuple(("GET", f"/search?q={term}", None) for term in (*rare_words(3), word(5)))


async def naive(conn: psycopg.AsyncConnection[Any], term: str) -> list[dict[str, Any]]:
    (query,) = statements(__name__, "naive")
    cursor = await conn.execute(query, {"pattern": f"%{term}%"})
    return [{"id": i, "conversation_id": c, "body": b, "created_at": at} for i, c, b, at in await cursor.fetchall()]


async def fixed(conn: psycopg.AsyncConnection[Any], term: str) -> list[dict[str, Any]]:
    (query,) = statements(__name__, "fixed")
    cursor = await conn.execute(query, {"pattern": f"%{term}%"})
    return [{"id": i, "conversation_id": c, "body": b, "created_at": at} for i, c, b, at in await cursor.fetchall()]


def routes(router: APIRouter, service: Any, impl: Any) -> None:
    @router.get("/search")
    async def search(q: str) -> Response:
        async with service.connection() as conn:
            return service.respond(await impl(conn, q))
