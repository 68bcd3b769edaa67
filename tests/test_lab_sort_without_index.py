"""sort_without_index's lab entry on a real server: the inbox query, planned the way `pglab
diagnose` plans it during a lab run (from pg_stat_statements, for the busiest owner), trips the
detector on the naive side and not once the composite index exists, and the index gives the same
pages as the sort."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
from test_detectors_support import ids, of, pgss_dsn, run_block, seed_chat, statements  # noqa: F401 (a fixture)

from pglab.lab.core.fixes import fix_blocks
from pglab.lab.runtime.diagnose import run_detectors, take_snapshot
from pglab.lab.trial.service.paths import sort_without_index as path

PEOPLE = (7, 42, 150)  # owners of a seeded conversation or two each


def seeded(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        seed_chat(conn, users=200, conversations=400, messages=2_000)
        run_block(conn, "sort_without_index", "setup")


def inboxes(dsn: str) -> set[str]:
    """Ids the detectors report over a window of inbox requests from integrations and people,
    sent the way the service sends them (values bound on the server side)."""
    (query,) = statements(fix_blocks("sort_without_index")["naive"])
    before = take_snapshot(dsn)
    with psycopg.connect(dsn, autocommit=True) as app:
        for _ in range(3):
            for user in (*path.INTEGRATIONS, *PEOPLE):
                app.execute(query, {"user_id": user}).fetchall()
    findings, _ = run_detectors(dsn, before)
    for found in of(findings, "sort_without_index"):
        assert "conversations" in found.message and found.evidence["rows_sorted"] >= 10_000, found.message
    return ids(findings)


def test_the_detector_sees_the_sorted_inbox_and_not_the_indexed_one(pgss_dsn: str) -> None:  # noqa: F811
    seeded(pgss_dsn)
    assert "sort_without_index" in inboxes(pgss_dsn)
    with psycopg.connect(pgss_dsn, autocommit=True) as conn:
        run_block(conn, "sort_without_index", "migrate")
        conn.execute("ANALYZE conversations")
    assert "sort_without_index" not in inboxes(pgss_dsn)


async def pages(dsn: str, users: tuple[int, ...]) -> list[list[dict[str, Any]]]:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        return [await path.fixed(conn, user) for user in users]


def test_the_index_gives_the_pages_the_sort_gave(pg_dsn: str) -> None:
    seeded(pg_dsn)
    users = (*path.INTEGRATIONS, *PEOPLE, 10_000)  # the last owns nothing
    sorted_pages = asyncio.run(pages(pg_dsn, users))
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        run_block(conn, "sort_without_index", "migrate")
        conn.execute("ANALYZE conversations")
        plan = conn.execute("EXPLAIN " + statements(fix_blocks("sort_without_index")["fixed"])[0],
                            {"user_id": 1}).fetchall()
    assert "Sort" not in "\n".join(row[0] for row in plan)  # the index delivers the order
    assert asyncio.run(pages(pg_dsn, users)) == sorted_pages
    integration = sorted_pages[0]
    assert len(integration) == 20 and [row["created_at"] for row in integration] == sorted(
        (row["created_at"] for row in integration), reverse=True)
    assert sorted_pages[-1] == []
