"""What every connection of the service starts with, and a share that can leave a transaction open.

Sharing a link in a conversation is accepted at once; in the background (FastAPI's BackgroundTasks)
the service bumps the conversation's last activity, fetches the link's preview and posts it as a
message, all in one transaction (nothing is posted if no preview can be had). The preview host
sometimes hangs: the HTTP client gives up after its default 5 s, and for those 5 s the transaction
sits idle in transaction, holding the conversation's row lock.

Naive: connections start with every timeout at Postgres's default, 0 (none), and a request waits
up to psycopg_pool's default 30 s for a pooled connection. Nothing ends the abandoned transaction,
so every other share in that conversation waits on its lock for the full 5 s, each holding a
pooled connection; busy conversations fill the pool and every endpoint of the service starves.
Fixed: the transaction that calls out sets its own idle-in-transaction timeout, 500 ms
(`set_config(..., true)`, i.e. SET LOCAL: a preview normally takes milliseconds), so the server
ends the abandoned transaction and frees its lock; and every connection starts with
`statement_timeout=15000` and `idle_in_transaction_session_timeout=10000`, with a 5 s acquire
timeout. This module's `fixed` settings are what every other entry's run uses, so they are no
looser than the lab's former defaults (15 s, 5 s) and no tighter than what other entries' naive
code needs to show its own harm: streaming_txn's naive stream sits idle in its transaction for
2 s, long polls for 1 s at a time, and naive queries run for seconds by design. That is why the
short timeout is the calling transaction's own, not the session's.
The share that hit the hanging host is dropped on both sides, and holds its pooled connection for
the 5 s on both; only how long it holds the conversation's lock differs.
(Fetching the preview before the transaction would avoid the lock altogether: that is
streaming_txn's lesson. This one is the safety net for the transaction nobody knew could hang.)
"""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import Response

from pglab.lab.trial.service.config import ServiceConfig, SessionSettings
from pglab.lab.trial.service.paths import statements

ROLE = "session"  # every connection the service opens starts with these settings
# Starved requests show as slow answers, or as no answer within the run (slots waiting on the pool
# when it ends are offered but not served): either way fewer answers within the SLO.
PREDICTED = ("p99_under_slo", "goodput_within_slo")
ENDPOINTS = ("GET /users/[id]/conversations",)  # the victim: a plain read that needs a pooled connection
PROBES = (("POST", "/conversations/7/links", {"user_id": 7, "url": "http://fast.example/agenda"}),
          ("GET", "/users/7/conversations", None))
PREVIEW_TIMEOUT_S = 5.0  # httpx's default timeout: what a busy developer's HTTP client gives up after
HANGING_HOST = "http://slow.example/"  # the link-preview host that hangs: the load links to it now and then


def naive(config: ServiceConfig) -> SessionSettings:
    """Every timeout at its default: none on the server, psycopg_pool's 30 s acquire wait."""
    return SessionSettings()


def fixed(config: ServiceConfig) -> SessionSettings:
    return SessionSettings(statement_timeout_ms=15_000, idle_in_transaction_ms=10_000,
                           acquire_timeout_s=config.pool_timeout, callout_idle_ms=500)


async def link_preview(url: str) -> str:
    """The simulated link-preview call: quick, or hanging when the link's host does not answer."""
    if url.startswith(HANGING_HOST):
        await asyncio.sleep(3600)
    await asyncio.sleep(0.005)
    return f"preview of {url}"


async def share(service: Any, settings: SessionSettings, conversation_id: int, user_id: int, url: str) -> None:
    """The work behind a share, after the answer went out: one transaction around the preview.
    A preview that times out (or a session the server ended) drops the share; nothing is posted."""
    if settings.callout_idle_ms:
        limit, touch, post = statements(__name__, "fixed")
    else:
        (touch, post), limit = statements(__name__, "naive"), ""
    params = {"conversation_id": conversation_id, "user_id": user_id}
    try:
        async with service.connection() as conn, conn.transaction():
            if limit:
                await conn.execute(limit, {"callout_idle_ms": f"{settings.callout_idle_ms}ms"})
            await conn.execute(touch, params)
            preview = await asyncio.wait_for(link_preview(url), PREVIEW_TIMEOUT_S)
            await conn.execute(post, {**params, "body": preview})
    except (TimeoutError, psycopg.Error):
        return


def routes(router: APIRouter, service: Any, impl: Any) -> None:
    @router.post("/conversations/{conversation_id}/links")
    async def share_link(conversation_id: int, request: Request, background: BackgroundTasks) -> Response:
        """Accepted at once; the preview and the post follow in the background, as FastAPI runs
        work the client should not wait for."""
        body = await request.json()
        background.add_task(share, service, impl(service.config), conversation_id, int(body["user_id"]),
                            str(body["url"]))
        return service.respond({"accepted": True}, status=202)
