"""offset_pagination's lab entry on a real server: the service's naive (OFFSET) and fixed (keyset)
scrollback give the same pages, from the top and after a jump to a date, cursor after cursor; the
plan rule sees the deep OFFSET page and not the keyset one."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any

import psycopg
import pytest
from test_detectors_support import ids, of, seed_chat, statements

from pglab.lab.core.fixes import fix_blocks
from pglab.lab.runtime.plans import check_statement
from pglab.lab.trial.service.paths import offset_pagination as path

LONG = 1  # seed_chat spreads 4,000 messages over 3 conversations: about 1,333 each


@pytest.fixture
def chat(pg_conn: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    """Three long conversations; messages share their minute, so the (created_at, id) tie-breaker matters."""
    seed_chat(pg_conn, users=50, conversations=3, messages=4_000)
    pg_conn.execute("UPDATE messages SET created_at = date_trunc('minute', created_at)")
    pg_conn.execute("ANALYZE messages")
    return pg_conn


async def walk(dsn: str, impl: Callable[..., Any], before: datetime | None = None) -> list[Any]:
    """Every page from the newest (or from a date) back, following the opaque next-page cursor."""
    pages = []
    cursor = None
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        while True:
            messages, cursor = await impl(conn, LONG, before, cursor)
            pages.append(messages)
            if cursor is None:
                return pages


def test_naive_and_fixed_give_the_same_pages(chat: psycopg.Connection[Any], pg_dsn: str) -> None:
    naive, fixed = asyncio.run(walk(pg_dsn, path.naive)), asyncio.run(walk(pg_dsn, path.fixed))
    assert naive == fixed and len(naive) == 27
    assert len({message["id"] for page in naive for message in page}) == sum(map(len, naive))  # none twice
    row = chat.execute("SELECT created_at FROM messages WHERE conversation_id = %s ORDER BY created_at"
                       " OFFSET 700 LIMIT 1", (LONG,)).fetchone()
    assert row is not None
    for date in (row[0], datetime(2000, 1, 1).astimezone(), datetime(2999, 1, 1).astimezone()):
        assert asyncio.run(walk(pg_dsn, path.naive, date)) == asyncio.run(walk(pg_dsn, path.fixed, date)), date
    jumped = asyncio.run(walk(pg_dsn, path.fixed, row[0]))
    assert jumped[0] and all(message["created_at"] < row[0] for page in jumped for message in page)


def test_the_plan_rule_sees_the_deep_offset_page_and_not_the_keyset_one(chat: psycopg.Connection[Any]) -> None:
    _, page = statements(fix_blocks("offset_pagination")["naive"])
    _, after = statements(fix_blocks("offset_pagination")["fixed"])
    row = chat.execute("SELECT id FROM messages WHERE conversation_id = %s ORDER BY created_at DESC, id DESC"
                       " OFFSET 1199 LIMIT 1", (LONG,)).fetchone()
    assert row is not None
    for analyze in (True, False):
        deep = of(check_statement(chat, page, {"conversation_id": LONG, "rows": 51, "offset": 1_200},
                                  analyze=analyze), "offset_pagination")
        assert deep and deep[0].evidence["rows_skipped"] >= 1_000, analyze
        shallow = check_statement(chat, page, {"conversation_id": LONG, "rows": 51, "offset": 100}, analyze=analyze)
        assert "offset_pagination" not in ids(shallow), analyze  # near miss: the first pages of the same code
        keyset = check_statement(chat, after, {"conversation_id": LONG, "rows": 51, "after_id": row[0]},
                                 analyze=analyze)
        assert "offset_pagination" not in ids(keyset), analyze


def test_the_detectors_example_trips_the_rule(pg_conn: psycopg.Connection[Any]) -> None:
    """The detector's EXAMPLE_PARAMS on conversations of EXAMPLE_SEED's length, as the generic plan
    rule test runs every rule: the naive block's last statement fires, the fixed block's does not."""
    from pglab.detectors import offset_pagination as detector

    seed_chat(pg_conn, users=12_000, **detector.EXAMPLE_SEED)
    naive = statements(fix_blocks("offset_pagination")["naive"])[-1]
    fixed = statements(fix_blocks("offset_pagination")["fixed"])[-1]
    for analyze in (True, False):
        assert of(check_statement(pg_conn, naive, detector.EXAMPLE_PARAMS, analyze=analyze), "offset_pagination")
        assert "offset_pagination" not in ids(check_statement(pg_conn, fixed, detector.EXAMPLE_PARAMS, analyze=analyze))
