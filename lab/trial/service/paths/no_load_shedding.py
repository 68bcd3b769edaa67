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
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from pglab.lab.trial.service.db import Unavailable
from pglab.lab.trial.service.paths import statements

PREDICTED = ("goodput_within_slo", "p99_under_slo")
# Measured (stop 22). Until then Locust's users sent in lockstep: 65 requests at once every half
# second, so the limiter shed each burst's excess and the database idled until the next one (a
# sampler of pg_stat_activity saw 8-10 queries active, then none, every 0.5 s); goodput 2-36/s,
# not cured. With arrivals spread over each user's period the benchmark gave goodput 0 naive
# against 67 (66-67) fixed, cured in 3 of 3 repeats (`python tests/bench/lab_bench.py --scale small
# --duration 8 --repeat 3 --no-ceiling`), but the fixed p99 sits near the SLO:
# single live runs gave 240, 260 and 310 ms. On a faster 2-core machine (AMD EPYC, 2026-12-01)
# 130 views/s is no overload: the naive service answered all of them within the SLO (goodput 130,
# fixed 128) at small and at medium, not reproduced (`python tests/bench/lab_bench.py --scale S
# --duration 8 --repeat 1 --no-ceiling ID`). An overload given as a fixed rate is one only on the
# machine it was measured on. So the profile now declares OVERLOAD = 1.5 and the lab measures the
# naive service's capacity before the run (`lab/trial/capacity.py`): here 220 req/s, 330 offered,
# cured in 6 of 6 repeats (two runs of `pglab lab run no_load_shedding --duration 8 --repeat 3`):
# goodput 0-60 naive against 194-200 fixed, fixed p99 100-140 ms. It stays a finding until the
# slower machine, where the fixed p99 sat at the SLO, has run it with the measured overload too.
# The next day on the same machine, 3 repeats (overload measured at 129 req/s, 194 offered): goodput
# 0 naive against 103 (92-103) fixed, but in repeat 3 the fixed side answered 92 req/s within the SLO,
# less than 80 % of the 120 it completed: not_cured, the rule against shedding work it could do.
# Stop 24 (2026-12-01, same machine): the limit grew by one place per answer in time, so it sat at
# its ceiling (the pool) whatever the latency; it now grows by one per limit's worth of answers, as
# TCP grows its window. Alternating single runs (`pglab lab run no_load_shedding --duration 8
# --override no_load_shedding=FILE`, 4 each, another process loading the machine at times) gave the
# fixed side's goodput as a share of the run's capacity: 83-100 % with this limit, 83-88 % with the
# old increase, 79-100 % with no adaptation at all (a fixed limit at the pool's 10 connections, the
# `fixed_limit` of tests/bench/shedding_bench.py): no variant stays above 80 % in every run. The
# 24-entry benchmark (quiet) then gave goodput 0 naive against 127 (108-140) fixed, but in repeat 1
# the fixed side answered 108 req/s within the SLO against the 147 the naive side completed (74 %).
# The capacity itself moved by 10-15 % between repeats (134 to 147 req/s naive). A likely further
# cause, not measured apart: the sides share 2 cores with Locust and the service, and answering the
# shed excess (a third of the offered load) costs CPU the database would have used.
# Stop 25 (2026-12-02), a machine about twice as slow (the report costs 23-27 ms of database CPU, not
# 12; capacity 52-86 req/s): 11 single repeats of this fix (`pglab lab run no_load_shedding --duration
# 8`, and the same sides run with `--override no_load_shedding=FILE`, FILE a copy of this path) gave
# the fixed side's goodput as 57-100 % of the run's capacity, 6 of them above 80 %. That cost is not
# the 503s': a sampler of /proc showed the service at 0.14-0.19 of a core and Locust at 0.05-0.11 on
# both sides, Postgres at 1.65-1.78 on the fixed side against 1.75-1.87 on the naive one. A trace of the limiter
# every 10 ms showed why the database had less to do: the limit averaged 6-7, the requests in
# flight 5, and in a quarter of the samples a place was free with no request waiting, while 40 a
# second were shed at other moments (arrivals come in clumps). Likely, not measured apart: with 5
# queries in flight instead of the naive side's 10, the database's backends, each in its own
# scheduling group (PostgreSQL starts them in their own session), get a smaller share of 2 cores. Neither a longer wait
# for a place (80 ms: 65-81 %, and the p99 over the SLO, 280-320 ms), nor serving the newest
# waiter first (LIFO, 25 and 80 ms: 72-97 %) stayed above 80 % in every run; nor did the service
# at a higher CPU priority (63-80 %). The capacity probe itself measured 57-94 req/s where the naive
# side then completed 52-86, so the offered overload was 1.1-2.2 times the run's capacity, not 1.5.
# Stop 29 (2026-12-02, the faster machine): the run's capacity is now counted by when the answers
# arrived, not by when the requests were sent; the naive side's send-time count had been 8-11 %
# above what it answered in the hold. Three single runs (`pglab lab run no_load_shedding --duration
# 8 --json F`): cured, not cured, cured; in the failing one the probe measured 160 req/s, 240 were
# offered, the naive side answered 153 in the hold and the fixed side 104 within the SLO (68 %),
# shedding 121 req/s where about 87 were the excess. At medium (the README's medium table of issue
# 14's entries) repeat 1 of 3 failed the same way (73 %), with the limiter at 6-7 queries in flight.
# Both full live tiers that day cured it.
KNOWN_FINDING = (
    "the fixed side's goodput falls under 80 % of the run's capacity in some repeats (57-100 % on a"
    " slower 2-core machine, 68-100 % on a faster one), and a fixed limit, a longer wait for a place or a"
    " LIFO queue do no better; with half the naive side's queries in flight, the database gets a smaller"
    " share of 2 cores shared with Locust and the service, and the capacity moves by 10-20 % between sides"
)
KNOWN_VERDICT = ("not_cured", "not_reproduced")  # the verdicts the finding explains; the live test expects no other
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
    shed), else it is shed. Answers within LATENCY_TARGET_S, while the limit is in use, raise
    it by one per limit's worth of them (one per round trip, as TCP grows its window); one slower
    than that, or failed, cuts it by a tenth, at most once per LATENCY_TARGET_S. So the limit
    settles where the database answers in time, and follows it when it gets slower.
    Waiters queue in arrival order and a freed place is handed to the first of them: a condition
    that wakes every waiter to race for one place costs the event loop a wake-up per waiter per
    answer, and under overload that delay lands on the admitted requests' own answers."""

    BACKOFF = 0.9

    def __init__(self, initial: float = MAX_LIMIT, floor: float = MIN_LIMIT, ceiling: float = MAX_LIMIT) -> None:
        self.limit, self.floor, self.ceiling = initial, floor, ceiling
        self.in_flight = 0
        self._last_cut = float("-inf")
        self._waiting: deque[asyncio.Future[None]] = deque()

    @asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        if self.in_flight < int(self.limit) and not self._waiting:
            self.in_flight += 1
        else:
            await self._wait_for_a_place()  # a place handed over is already counted in flight
        started, ok = time.monotonic(), False
        try:
            yield
            ok = True
        finally:
            self._done(time.monotonic() - started, ok)

    async def _wait_for_a_place(self) -> None:
        place: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(place)
        try:
            await asyncio.wait_for(place, QUEUE_TIMEOUT_S)
        except TimeoutError:
            raise Overloaded(f"{self.in_flight} requests in flight, the limit is {int(self.limit)}") from None
        except asyncio.CancelledError:  # the client went away: a place handed over meanwhile is given back
            if place.done() and not place.cancelled():
                self.in_flight -= 1
                self._hand_over()
            raise

    def _done(self, seconds: float, ok: bool) -> None:
        busy = self.in_flight * 2 >= self.limit  # grow only a limit that is in use, not an idle one
        self.in_flight -= 1
        now = time.monotonic()
        if not ok or seconds > LATENCY_TARGET_S:
            # One cut per latency target at most, as TCP halves once per round trip, not per lost
            # packet: the slow answers of one spell all started under the same limit, and cutting
            # for each of them would drive the limit to its floor after a single hiccup.
            if now - self._last_cut >= LATENCY_TARGET_S:
                self.limit = max(self.floor, self.limit * self.BACKOFF)
                self._last_cut = now
        elif busy:  # one more place per limit's worth of answers in time: a round trip's, as TCP grows its window
            self.limit = min(self.ceiling, self.limit + 1 / self.limit)
        self._hand_over()

    def _hand_over(self) -> None:
        """Give the free places to the longest waiting requests (a timed-out one is cancelled: skip it)."""
        while self._waiting and self.in_flight < int(self.limit):
            place = self._waiting.popleft()
            if not place.done():
                self.in_flight += 1
                place.set_result(None)


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
