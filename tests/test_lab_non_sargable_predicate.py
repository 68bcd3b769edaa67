"""non_sargable_predicate's lab entry on a real server: the day's usage counted with
`created_at::date = $1` trips the detector, the half-open range does not, and both give the same
answer whatever the session's time zone, daylight-saving days included."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from typing import Any

import psycopg
from psycopg import sql
from test_detectors_support import ids, of, pgss_dsn, run_block, seed_chat, statements  # noqa: F401 (a fixture)

from pglab.detectors.non_sargable_predicate import wrapped_columns
from pglab.lab.core.fixes import fix_blocks
from pglab.lab.runtime.diagnose import run_detectors, take_snapshot
from pglab.lab.trial.service.paths import non_sargable_predicate as path

FIRST_DAY = date(2025, 10, 20)
DAYS = 30  # over the end of summer time in Europe (26 October) and in North America (2 November)
ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Pacific/Chatham")


def seeded(dsn: str) -> None:
    """The chat data, with its messages moved to one every 97 seconds from FIRST_DAY on."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        seed_chat(conn, users=100, conversations=100, messages=30_000)
        conn.execute("UPDATE messages SET created_at = %s::timestamptz + id * interval '97 seconds'",
                     (f"{FIRST_DAY} 00:00:00+00",))
        run_block(conn, "non_sargable_predicate", "setup")
        conn.execute("VACUUM ANALYZE messages")


def usage(dsn: str, block: str) -> set[str]:
    """Ids the detectors report over a window of usage requests, sent as the service sends them."""
    (query,) = statements(fix_blocks("non_sargable_predicate")[block])
    before = take_snapshot(dsn)
    with psycopg.connect(dsn, autocommit=True) as app:
        for offset in range(0, DAYS, 3):
            day = FIRST_DAY + timedelta(days=offset)
            app.execute(query, {"day": day, "next_day": day + timedelta(days=1)}).fetchall()
    findings, _ = run_detectors(dsn, before)
    for found in of(findings, "non_sargable_predicate"):
        assert found.evidence["column"] == "created_at" and "::date" in found.evidence["expression"]
    return ids(findings)


def test_the_detector_sees_the_cast_and_not_the_range(pgss_dsn: str) -> None:  # noqa: F811
    seeded(pgss_dsn)
    assert "non_sargable_predicate" in usage(pgss_dsn, "naive")
    assert "non_sargable_predicate" not in usage(pgss_dsn, "fixed")


async def answers(dsn: str, zone: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(sql.SQL("SET TimeZone = {}").format(sql.Literal(zone)))
        days = [FIRST_DAY + timedelta(days=offset) for offset in range(-1, DAYS + 1)]
        return [await path.naive(conn, day) for day in days], [await path.fixed(conn, day) for day in days]


def test_the_range_counts_what_the_cast_counts_in_every_time_zone(pg_dsn: str) -> None:
    seeded(pg_dsn)
    by_zone = {}
    for zone in ZONES:
        naive, fixed = asyncio.run(answers(pg_dsn, zone))
        assert naive == fixed, zone
        by_zone[zone] = naive
    assert by_zone["UTC"][0]["messages"] == 0 and by_zone["UTC"][1]["messages"] == 890  # 86,400 s / 97 s
    assert by_zone["America/New_York"][0]["messages"] == 148  # its day ends at 04:00 UTC


def test_the_wrapping_is_named_as_the_plan_writes_it() -> None:
    assert wrapped_columns("((created_at)::date = '2025-12-17'::date)") == [("created_at", "created_at::date")]
    assert wrapped_columns("((m.created_at)::timestamp without time zone >= '2025-12-17 00:00:00'::timestamp"
                           " without time zone)") == [("created_at", "m.created_at::timestamp without time zone")]
    assert wrapped_columns("(lower(email) = 'bob@example.com'::text)") == [("email", "lower(email)")]
