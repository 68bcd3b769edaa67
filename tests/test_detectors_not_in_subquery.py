"""not_in_subquery on a live server. The statistics rule: a NOT IN statement that returns nothing
call after call (the NULL trap: a nullable subquery column with NULLs in it) is reported; its
NOT EXISTS fix, and a NOT IN whose answers are not empty, are not. The plan rule on a NOT IN that
never completes (pg_stat_statements never counts it): planned from the session running it."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
from psycopg import sql
from test_detectors_support import flush_stats, ids, of, pgss_dsn, seed_chat, statements  # noqa: F401

from pglab.lab.core.fixes import fix_blocks
from pglab.lab.runtime.diagnose import run_detectors, take_snapshot

CALLS = 25  # above the rule's min_empty_calls


def _calls(dsn: str, query: str) -> list[Any]:
    """Ids of what the detectors report over a window in which `query` ran CALLS times."""
    before = take_snapshot(dsn)
    with psycopg.connect(dsn, autocommit=True) as app:
        for _ in range(CALLS):
            app.execute(query).fetchall()
        flush_stats(app)
    findings, _ = run_detectors(dsn, before, explain_top=False)
    return findings


def test_an_always_empty_not_in_is_the_null_trap(pgss_dsn: str) -> None:  # noqa: F811
    with psycopg.connect(pgss_dsn, autocommit=True) as conn:
        seed_chat(conn, users=50, conversations=20, messages=2_000, notifications=1_900)
        conn.execute("UPDATE notifications SET message_id = NULL, kind = 'system' WHERE id % 10 = 0")
    (naive,) = statements(fix_blocks("not_in_subquery")["naive"])
    (fixed,) = statements(fix_blocks("not_in_subquery")["fixed"])
    found = of(_calls(pgss_dsn, naive), "not_in_subquery")
    assert found and "returned no row in any of its 25 calls" in found[0].message
    assert found[0].evidence["calls"] == CALLS
    assert "not_in_subquery" not in ids(_calls(pgss_dsn, fixed))


def test_a_not_in_that_answers_is_quiet(pgss_dsn: str) -> None:  # noqa: F811
    with psycopg.connect(pgss_dsn, autocommit=True) as conn:
        seed_chat(conn, users=50, conversations=20, messages=2_000, notifications=1_900)  # no NULLs
    (naive,) = statements(fix_blocks("not_in_subquery")["naive"])
    assert "not_in_subquery" not in ids(_calls(pgss_dsn, naive))
    # empty, but no NOT IN: nothing to blame on NULLs
    assert "not_in_subquery" not in ids(_calls(pgss_dsn, "SELECT id FROM messages WHERE id < 0"))


def test_a_not_in_still_running_is_planned_from_its_session(pg_dsn: str) -> None:
    """Too big to hash (work_mem is small in this database), it re-reads the notifications for each
    message: it runs far past the window, so only pg_stat_activity knows it."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        seed_chat(conn, users=50, conversations=20, messages=30_000, notifications=20_000)
        conn.execute("UPDATE notifications SET message_id = NULL, kind = 'system' WHERE id % 10 = 0")
        database = conn.execute("SELECT current_database()").fetchone()[0]  # type: ignore[index]
        conn.execute(sql.SQL("ALTER DATABASE {} SET work_mem = '64kB'").format(sql.Identifier(database)))
    (naive,) = statements(fix_blocks("not_in_subquery")["naive"])
    before = take_snapshot(pg_dsn)
    app = psycopg.connect(pg_dsn, autocommit=True)
    running = threading.Thread(target=_until_cancelled, args=(app, naive))
    running.start()
    try:
        time.sleep(2)
        findings, _ = run_detectors(pg_dsn, before, explain_top=True)
    finally:
        app.cancel()
        running.join(timeout=30)
        app.close()
    found = of(findings, "not_in_subquery")
    assert found and "re-runs SubPlan" in found[0].message, [f.message for f in findings]
    assert found[0].evidence["statement"]["calls"] == 0 and found[0].evidence["statement"]["running_s"] >= 1


def _until_cancelled(conn: psycopg.Connection[Any], query: str) -> None:
    try:
        conn.execute("SET statement_timeout = '60s'")
        conn.execute(query).fetchall()
    except psycopg.errors.QueryCanceled:
        pass
