"""Long polling: wait up to `wait` seconds for notifications newer than the last one seen.

Naive: the handler takes a pooled connection and loops inside it: query, nothing new, sleep a
second, query again, until something arrives or the wait is over. It also runs inside the
request's transaction, as psycopg's default (non-autocommit) connections and per-request ORM
sessions open one implicitly, so between looks the session sits "idle in transaction". Each
waiting client pins one connection for up to the whole wait; a pool of ten is exhausted by ten
open browser tabs, and every other request of the service queues behind them until the pool
times out (a 503).
Fixed: the same statement, but each look borrows a connection for one short query and gives it
back before sleeping, so a waiting client holds nothing. (At scale the better cure is
LISTEN/NOTIFY: one listening connection per process wakes the waiters, and nobody polls.)
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import Response

from pglab.lab.trial.service.paths import statements

PREDICTED = ("p99_under_slo", "error_rate_under_budget")
ENDPOINTS = ("GET /conversations/[id]/messages",)  # what everyone else reads; a poll is long by design
PROBES = (("GET", "/users/3/notifications/poll?after=0&wait=1", None),  # something new: at once
          ("GET", "/users/3/notifications/poll?after=1000000000&wait=1", None))  # nothing: [] after 1 s
POLL_INTERVAL = 1.0  # seconds between two looks
MAX_WAIT = 30.0  # seconds: below the idle timeout of common proxies and load balancers


async def naive(service: Any, user_id: int, after: int, wait: float) -> list[dict[str, Any]]:
    (poll,) = statements(__name__, "naive")
    deadline = time.monotonic() + wait
    async with service.connection() as conn, conn.transaction():  # held, in a transaction, for the whole wait
        while True:
            cursor = await conn.execute(poll, {"user_id": user_id, "after": after})
            found = _notes(await cursor.fetchall())
            if found or time.monotonic() >= deadline:
                return found
            await asyncio.sleep(min(POLL_INTERVAL, deadline - time.monotonic()))


async def fixed(service: Any, user_id: int, after: int, wait: float) -> list[dict[str, Any]]:
    (poll,) = statements(__name__, "fixed")
    deadline = time.monotonic() + wait
    while True:
        async with service.connection() as conn:  # borrowed for one look, given back before the sleep
            cursor = await conn.execute(poll, {"user_id": user_id, "after": after})
            found = _notes(await cursor.fetchall())
        if found or time.monotonic() >= deadline:
            return found
        await asyncio.sleep(min(POLL_INTERVAL, deadline - time.monotonic()))


def _notes(rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    return [{"id": i, "kind": kind, "message_id": message, "created_at": at} for i, kind, message, at in rows]


def routes(router: APIRouter, service: Any, impl: Any) -> None:
    @router.get("/users/{user_id}/notifications/poll")
    async def poll_notifications(user_id: int, after: int = 0,
                                 wait: float = Query(MAX_WAIT, ge=0, le=MAX_WAIT)) -> Response:
        return service.respond(await impl(service, user_id, after, wait))
