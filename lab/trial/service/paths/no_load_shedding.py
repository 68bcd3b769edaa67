"""A busy conversation's top posters, asked for faster than the database can answer.

Naive: every request takes a pooled connection and waits for one as long as the pool lets it. The
pool is bounded (10 connections), the queue in front of it is not: past capacity, requests pile
up in the service, each one waiting behind all the others, and answers arrive seconds late while
the database works flat out and throughput stays where it was. Nobody is told "no", so nobody
gets a timely "yes" either.

Fixed: admission control. An adaptive concurrency limit (AIMD, after Netflix's
concurrency-limits) admits a request while fewer than `limit` are in flight; one that finds no
place within a few tens of milliseconds is answered at once with 503 and `Retry-After`. The
limit grows while admitted requests are answered within a latency target and shrinks when they
are not, so it settles where the database answers in time and follows it when it gets slower.
Admitted requests also wait for a pooled connection at most ACQUIRE_TIMEOUT_S.
The query is the same on both sides (fixes/no_load_shedding.sql); only the admission differs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from pglab.lab.trial.service.db import Unavailable
from pglab.lab.trial.service.paths import statements

PREDICTED = ("goodput_within_slo", "p99_under_slo")
# Measured, 2026-11-30, `pglab lab run no_load_shedding --duration 8` (and tests/bench/shedding_bench.py),
# 60 views/s offered, the report query (16-21 views/s is what 10 connections completed):
KNOWN_FINDING = (
    "not cured on a shared 2-core box: the database's work is CPU, shared with Locust, uvicorn and other"
    " load, so a query's time grows with everything running, not with its own queue alone. No limit: 16-21"
    " answers/s, p99 4.4-5.0 s, goodput 0/s. Adaptive limit (settles at its floor, 4): 8-8.5 answers/s,"
    " p99 330-370 ms, goodput 0.5-8.5/s, 84-86 % shed. Fixed limit 10 with a 25 ms acquire timeout: 15/s,"
    " p99 2.0 s, goodput 0-15/s. Shedding raises goodput from 0 but no limit meets a 250 ms p99 and"
    " 80 % of the capacity: 4 queries in flight already take ~0.5 s each, and the database completes"
    " half as much with 4 backends as with 10 (fewer runnable processes, a smaller share of the CPU)"
)
KNOWN_VERDICT = "not_cured"  # the verdict the finding explains; the live test expects no other
ENDPOINTS = ("GET /conversations/[id]/top-posters",)
PROBES = (("GET", "/conversations/1/top-posters", None), ("GET", "/conversations/700/top-posters", None))

# The service promises a p99 of 250 ms. The limiter times only the database's part (waiting for
# and holding a connection), not the HTTP path around it, so it reacts to the database, not to CPU
# contention in the web tier; it gives the database about half of the SLO and leaves the rest to
# the HTTP path. A request that cannot start within a tenth of the SLO is better told at once.
LATENCY_TARGET_S = 0.12
QUEUE_TIMEOUT_S = 0.025  # the longest a request waits for a place under the limit before it is shed
ACQUIRE_TIMEOUT_S = 0.025  # the longest an admitted request waits for a pooled connection
# The limit never falls below a few queries per database core (a 2-core database is only busy with
# at least 2 in flight, and 4 hides the gaps between one query and the next); a slow spell then
# costs latency, not most of the capacity. Nor above the pool: more in flight would only queue.
MIN_LIMIT, MAX_LIMIT = 4, 10
RETRY_AFTER_S = 1


class Overloaded(Exception):
    """No place under the concurrency limit soon enough: the request is shed before it costs anything."""


class AdaptiveLimit:
    """An in-flight limit that finds the capacity by itself (AIMD, as in Netflix's
    concurrency-limits). A request waits at most QUEUE_TIMEOUT_S for a place under the limit
    (arrivals come in bursts: a short, bounded wait serves a burst that an instant "no" would
    shed), else it is shed. Each answer within LATENCY_TARGET_S, while the limit is in use,
    raises the limit by one; one slower than that, or failed, cuts it by a tenth. So the limit
    settles where the database answers in time, and follows it when it gets slower."""

    BACKOFF = 0.9

    def __init__(self, initial: float = MAX_LIMIT, floor: float = MIN_LIMIT, ceiling: float = MAX_LIMIT) -> None:
        self.limit, self.floor, self.ceiling = initial, floor, ceiling
        self.in_flight = 0
        self._freed = asyncio.Condition()

    @asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        if self.in_flight >= int(self.limit):
            await self._wait_for_a_place()
        self.in_flight += 1
        started, ok = time.monotonic(), False
        try:
            yield
            ok = True
        finally:
            self._done(time.monotonic() - started, ok)
            async with self._freed:
                self._freed.notify_all()  # the limit may have grown: let every waiter that fits in

    async def _wait_for_a_place(self) -> None:
        try:
            async with self._freed:
                await asyncio.wait_for(self._freed.wait_for(self._has_room), QUEUE_TIMEOUT_S)
        except TimeoutError:
            if self._has_room():  # a place freed while the event loop was busy elsewhere: take it
                return
            raise Overloaded(f"{self.in_flight} requests in flight, the limit is {int(self.limit)}") from None

    def _has_room(self) -> bool:
        return self.in_flight < int(self.limit)

    def _done(self, seconds: float, ok: bool) -> None:
        busy = self.in_flight * 2 >= self.limit  # grow only a limit that is in use, not an idle one
        self.in_flight -= 1
        if not ok or seconds > LATENCY_TARGET_S:
            self.limit = max(self.floor, self.limit * self.BACKOFF)
        elif busy:
            self.limit = min(self.ceiling, self.limit + 1)


LIMIT = AdaptiveLimit()


def _rows(rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    return [{"user_id": u, "messages": n, "tokens": t, "last_at": at, "words": w} for u, n, t, at, w in rows]


async def naive(service: Any, conversation_id: int) -> Response:
    (query,) = statements(__name__, "naive")
    async with service.db.pooled() as conn:  # waits its turn behind every request already waiting
        cursor = await conn.execute(query, {"conversation_id": conversation_id})
        return service.respond(_rows(await cursor.fetchall()))


async def fixed(service: Any, conversation_id: int) -> Response:
    (query,) = statements(__name__, "fixed")
    try:
        async with LIMIT.admit(), service.db.pooled(timeout=ACQUIRE_TIMEOUT_S) as conn:  # timed: the database's part
            cursor = await conn.execute(query, {"conversation_id": conversation_id})
            rows = await cursor.fetchall()
    except (Overloaded, Unavailable) as error:  # shed: say so at once, and when to come back
        response = service.respond({"error": f"overloaded, retry later: {error}"}, status=503)
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
        return response
    return service.respond(_rows(rows))


def routes(router: APIRouter, service: Any, impl: Any) -> None:
    @router.get("/conversations/{conversation_id}/top-posters")
    async def top_posters(conversation_id: int) -> Response:
        return await impl(service, conversation_id)
