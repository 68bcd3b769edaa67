"""The lab's WAL-per-write invariant (write_amplification's predicted harm), on a real server: what
the meter counts and leaves out, how the invariant judges a window, which profiles get it; and the
write_amplification detector's rate rule for windows of seconds."""

from __future__ import annotations

import re
import time
from typing import Any

import psycopg
from test_detectors_support import flush_stats, of, pgss_dsn, run_block, seed_chat, statements  # noqa: F401

from pglab.lab.core.fixes import fix_blocks
from pglab.lab.runtime.diagnose import run_detectors, take_snapshot
from pglab.lab.runtime.stats import MARKER
from pglab.lab.trial import baseline, invariants, seed
from pglab.lab.trial.loadrun import Summary
from pglab.lab.trial.runner import LabRun

ENTRY = "write_amplification"
PAYLOAD = '{"source": "ci", "status": "completed", "conclusion": "failure", "run_id": 4211, "branch": "main"}'


def _insert(conn: psycopg.Connection[Any], rows: int, first: int = 0) -> None:
    (insert,) = statements(fix_blocks(ENTRY)["naive"])
    for i in range(first, first + rows):
        conn.execute(insert, {"conversation_id": 1 + i % 200, "user_id": 1 + i % 200, "body": f"run {i} failed",
                              "metadata": PAYLOAD})


def _statement_wal(conn: psycopg.Connection[Any]) -> float:
    row = conn.execute("SELECT coalesce(sum(wal_bytes), 0)::float8 FROM pg_stat_statements"
                       " WHERE query LIKE 'INSERT INTO messages%%' AND toplevel").fetchone()
    return float(row[0]) if row else 0.0


def test_the_meter_counts_the_service_statements_and_not_the_labs(pgss_dsn: str) -> None:  # noqa: F811
    with psycopg.connect(pgss_dsn, autocommit=True) as conn:
        seed_chat(conn, messages=2_000)
        conn.execute("SELECT pg_stat_statements_reset()")
        meter = invariants.WalMeter(pgss_dsn)
        meter.sample()
        _insert(conn, 100)
        conn.execute(f"INSERT {MARKER} INTO users (name, email) SELECT 'lab', 'lab' FROM generate_series(1, 500)")
        meter.sample()
        written = meter.between(meter.samples[0][0], meter.samples[-1][0])
        assert written == _statement_wal(conn) > 100 * 100  # the inserts' own, to the byte; not the lab's
    assert meter.between(meter.samples[0][0] - 1, meter.samples[-1][0]) is None  # before the first sample: unknown


def test_every_redundant_index_adds_wal_to_each_insert(pgss_dsn: str) -> None:  # noqa: F811
    per_insert = []
    with psycopg.connect(pgss_dsn, autocommit=True) as conn:
        seed_chat(conn, messages=2_000)
        for block in ("fixed", "setup"):  # no secondary index, then the setup's four
            if block == "setup":
                run_block(conn, ENTRY, "setup")
            conn.execute("SELECT pg_stat_statements_reset()")
            _insert(conn, 200, first=1_000 * len(per_insert))
            per_insert.append(_statement_wal(conn) / 200)
    # four more index entries per row, the GIN one holding every key and value of the payload
    assert per_insert[1] > per_insert[0] + 4 * 60, per_insert


def _hold(writes: int, failed_writes: int = 0, reads: int = 500) -> Summary:
    endpoints = {"POST /conversations/[id]/webhook": {"requests": writes, "failures": failed_writes, "histogram": {}},
                 "GET /conversations/[id]/messages": {"requests": reads, "failures": 0, "histogram": {}}}
    return Summary(requests=writes + reads, failures=failed_writes, seconds=5, histogram={}, endpoints=endpoints)


def test_wal_per_write_is_judged_on_successful_writes_against_the_budget() -> None:
    meter = invariants.WalMeter("", samples=[(100.0, 0.0), (110.0, 180_000.0)])  # 18 kB a second
    assert meter.at(101.5) == 27_000 and meter.at(111) is None  # interpolated between samples, never beyond
    budget = invariants.Limits(wal_bytes_per_write=2048)
    (check,) = invariants.wal_per_write(_hold(100, failed_writes=10), meter, 101.5, 106.7, budget).values()
    assert (check.held, check.value, check.limit) == (True, 1000, 2048)  # 90 kB over 90 writes, reads aside
    (check,) = invariants.wal_per_write(_hold(100, failed_writes=10), meter, 101, 106, invariants.Limits(
        wal_bytes_per_write=512)).values()
    assert (check.held, check.value) == (False, 1000)
    assert invariants.wal_per_write(_hold(100), meter, 101, 106, invariants.Limits()) == {}  # no budget declared
    assert invariants.wal_per_write(_hold(0), meter, 101, 106, budget) == {}  # no write: nothing to judge
    assert invariants.wal_per_write(_hold(100), invariants.WalMeter("", unavailable=True), 101, 106, budget) == {}


def test_only_a_profile_that_declares_a_budget_is_judged_on_wal() -> None:
    small = seed.get_scale("small")
    assert LabRun(ENTRY, small, 8).limits().wal_bytes_per_write == 2048
    assert LabRun("missing_index", small, 8).limits().wal_bytes_per_write is None


def _index_names(sql_text: str, pattern: str) -> set[str]:
    return set(re.findall(pattern, sql_text, flags=re.IGNORECASE))


def test_the_fix_drops_only_indexes_its_own_setup_creates() -> None:
    """Its migrate runs on both sides of every other entry's run: dropping an index another
    entry's fix creates would undo that fix."""
    blocks = fix_blocks(ENTRY)
    dropped = _index_names(blocks["migrate"], r"DROP INDEX (?:CONCURRENTLY )?(?:IF EXISTS )?(\w+)")
    created = _index_names(blocks["setup"], r"CREATE INDEX (?:CONCURRENTLY )?(?:IF NOT EXISTS )?(\w+)")
    assert dropped and dropped <= created
    for other in baseline.lab_ids():
        if other != ENTRY:
            theirs = " ".join(baseline.migration(other) + baseline.setup(other))
            assert not dropped & _index_names(theirs, r"CREATE (?:UNIQUE )?INDEX (?:CONCURRENTLY )?"
                                                      r"(?:IF NOT EXISTS )?(\w+)"), other


def _window(dsn: str, rows: int, seconds: float, first: int, **limits: float) -> list[Any]:
    before = take_snapshot(dsn)
    began = time.monotonic()
    with psycopg.connect(dsn, autocommit=True) as app:
        _insert(app, rows, first)
        flush_stats(app)
    time.sleep(max(0.0, seconds - (time.monotonic() - began)))
    findings, _ = run_detectors(dsn, before, explain_top=False, thresholds={ENTRY: limits} if limits else None)
    return of(findings, ENTRY)


def test_a_steady_write_rate_makes_a_short_window_write_heavy(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        seed_chat(conn, messages=2_000)
        run_block(conn, ENTRY, "setup")
    # 300 rows over about a second and a half: ~200 a second, far below the 1,000 rows of the count
    fast = {"min_rate_seconds": 1.0}
    (found,) = _window(pg_dsn, 300, 1.5, 10_000, **fast)
    assert set(found.evidence["redundant_indexes"]) == {"messages_conversation_id_only_idx"}
    assert not _window(pg_dsn, 300, 1.5, 20_000)  # the same, over less than min_rate_seconds: no rate yet
    assert not _window(pg_dsn, 30, 1.5, 30_000, **fast)  # 20 rows a second is no write-heavy table
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        run_block(conn, ENTRY, "migrate")
    assert not _window(pg_dsn, 300, 1.5, 40_000, **fast)  # the fix: nothing redundant left
