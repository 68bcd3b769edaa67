"""unbounded_results' lab entry on a real server: the service's naive and fixed history pages are
the same pages, cursor after cursor, and only the naive list query trips the runtime detector."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import psycopg
from test_detectors_support import ids, pgss_dsn, seed_chat, statements  # noqa: F401 (pgss_dsn: a fixture)

from pglab.lab.core.fixes import fix_blocks
from pglab.lab.runtime.diagnose import run_detectors, take_snapshot
from pglab.lab.trial.service.paths import unbounded_results as path

LONG = 1  # seed_chat spreads 4,000 messages over 3 conversations: about 1,333 each


def seeded(dsn: str) -> None:
    """Three long conversations; messages share their minute, so the (created_at, id) tie-breaker matters."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        seed_chat(conn, users=50, conversations=3, messages=4_000)
        conn.execute("UPDATE messages SET created_at = date_trunc('minute', created_at)")
        conn.execute("ANALYZE messages")


async def walk(dsn: str, impl: Callable[..., Any], conversation_id: int, before: int | None = None) -> list[Any]:
    """Every page of a conversation's history, following the next-page cursor as a client would."""
    pages = []
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        while True:
            messages, more = await impl(conn, conversation_id, before)
            pages.append(messages)
            if not more:
                return pages
            before = messages[-1]["id"]


def test_naive_and_fixed_give_the_same_pages(pg_dsn: str) -> None:
    seeded(pg_dsn)
    naive = asyncio.run(walk(pg_dsn, path.naive, LONG))
    fixed = asyncio.run(walk(pg_dsn, path.fixed, LONG))
    assert naive == fixed
    assert len(naive) == 27 and all(len(page) == path.PAGE for page in naive[:-1])
    assert len({message["id"] for page in naive for message in page}) == sum(map(len, naive))  # none twice
    with psycopg.connect(pg_dsn) as conn:
        other = conn.execute("SELECT id FROM messages WHERE conversation_id = 2 LIMIT 1").fetchone()
    assert other is not None
    for impl in (path.naive, path.fixed):  # a cursor from another conversation: no page, on both sides
        assert asyncio.run(walk(pg_dsn, impl, LONG, before=other[0])) == [[]]


def test_the_detector_sees_the_naive_list_and_not_the_fixed_pages(pgss_dsn: str) -> None:  # noqa: F811
    seeded(pgss_dsn)
    (every,) = statements(fix_blocks("unbounded_results")["naive"])
    newest, older = statements(fix_blocks("unbounded_results")["fixed"])

    def found(work: Callable[[psycopg.Connection[Any]], None]) -> set[str]:
        before = take_snapshot(pgss_dsn)
        with psycopg.connect(pgss_dsn, autocommit=True) as app:
            for _ in range(5):
                work(app)
        return ids(run_detectors(pgss_dsn, before, explain_top=False)[0])

    assert "unbounded_results" in found(lambda app: app.execute(every, {"conversation_id": LONG}).fetchall())

    def pages(app: psycopg.Connection[Any]) -> None:
        page = app.execute(newest, {"conversation_id": LONG, "rows": path.PAGE + 1}).fetchall()
        app.execute(older, {"conversation_id": LONG, "rows": path.PAGE + 1, "before": page[-1][0]}).fetchall()

    assert "unbounded_results" not in found(pages)
