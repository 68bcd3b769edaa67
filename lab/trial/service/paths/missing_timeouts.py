"""What every connection of the service starts with, and a share that can leave a transaction open.

Sharing a link in a conversation bumps the conversation's last activity, fetches the link's preview
and posts it as a message, all in one transaction (the post is rolled back if no preview can be
had). The preview host sometimes hangs: the HTTP client gives up after its default 5 s, and for
those 5 s the transaction sits idle in transaction, holding the conversation's row lock.

Naive: connections start with every timeout at Postgres's default, 0 (none), and a request waits
up to psycopg_pool's default 30 s for a pooled connection. Nothing ends the abandoned transaction,
so every other share in that conversation waits on its lock for the full 5 s, each holding a
pooled connection; a busy conversation fills the pool and every endpoint of the service starves.
Fixed: the service's connections start with `idle_in_transaction_session_timeout=1000` (no route
legitimately sits idle in a transaction for more than a tokenizer call or a stream chunk, a few
hundred ms), so the server ends the abandoned transaction after 1 s and frees its lock, plus
`statement_timeout=15000` and a 5 s acquire timeout. This module's `fixed` is what every other
entry's run uses, so those values are no looser than the lab's former defaults (15 s, 5 s): a
shorter statement timeout would turn other entries' naive slowness (seconds, by design) into errors.
The share that hit the hanging host fails on both sides; only how long it holds its lock differs.
(Fetching the preview before the transaction would avoid the lock altogether: that is
streaming_txn's lesson. This one is the safety net for the transaction nobody knew could hang.)
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from pglab.lab.trial.service.config import ServiceConfig, SessionSettings
from pglab.lab.trial.service.paths import statements

ROLE = "session"  # every connection the service opens starts with these settings
PREDICTED = ("p99_under_slo",)
ENDPOINTS = ("GET /users/[id]/conversations",)  # the victim: a plain read that needs a pooled connection
PROBES = (("POST", "/conversations/7/links", {"user_id": 7, "url": "http://fast.example/agenda"}),
          ("GET", "/users/7/conversations", None))
PREVIEW_TIMEOUT_S = 5.0  # httpx's default timeout: what a busy developer's HTTP client gives up after
HANGING_HOST = "http://slow.example/"  # the link-preview host that hangs: the load links to it now and then


def naive(config: ServiceConfig) -> SessionSettings:
    """Every timeout at its default: none on the server, psycopg_pool's 30 s acquire wait."""
    return SessionSettings()


def fixed(config: ServiceConfig) -> SessionSettings:
    return SessionSettings(statement_timeout_ms=15_000, idle_in_transaction_ms=1_000,
                           acquire_timeout_s=config.pool_timeout)


async def link_preview(url: str) -> str:
    """The simulated link-preview call: quick, or hanging when the link's host does not answer."""
    if url.startswith(HANGING_HOST):
        await asyncio.sleep(3600)
    await asyncio.sleep(0.005)
    return f"preview of {url}"


def routes(router: APIRouter, service: Any, impl: Any) -> None:
    @router.post("/conversations/{conversation_id}/links")
    async def share_link(conversation_id: int, request: Request) -> Response:
        body = await request.json()
        touch, post = statements(__name__, "fixed")  # the same SQL on both sides: the fix is the settings
        params = {"conversation_id": conversation_id, "user_id": int(body["user_id"])}
        try:
            async with service.connection() as conn, conn.transaction():
                await conn.execute(touch, params)
                preview = await asyncio.wait_for(link_preview(str(body["url"])), PREVIEW_TIMEOUT_S)
                cursor = await conn.execute(post, {**params, "body": preview})
                row = await cursor.fetchone()
        except TimeoutError:
            return service.respond({"error": "the link preview timed out; nothing was posted"}, status=504)
        return service.respond({"id": row[0] if row else None, "body": preview})
