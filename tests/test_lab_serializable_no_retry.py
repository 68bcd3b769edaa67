"""serializable_no_retry on a live server: the detector counts the serialization failures of the
naive transaction (two posts of one account overlapping at SERIALIZABLE) and stays quiet when the
same posts lock the account row at READ COMMITTED; the service's naive path turns such overlaps
into 500s, its fixed path posts every one, charging each exactly once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
from test_detectors_support import flush_stats, ids, pgss_dsn, run_block, seed_chat, statements  # noqa: F401
from test_lab_service import TINY, call

from pglab.lab.core.fixes import fix_blocks
from pglab.lab.runtime.diagnose import run_detectors, take_snapshot
from pglab.lab.trial import invariants
from pglab.lab.trial.seed import lab_dsn, seed
from pglab.lab.trial.service.process import running_service

ENTRY = "serializable_no_retry"
POST = {"conversation_id": 1, "user_id": 1, "body": "two words", "tokens": 2}


def _posts_overlapping(dsn: str, isolation: list[str], read: str, insert: str, charge: str) -> int:
    """Five rounds of two posts of one account that both check the quota before either writes;
    returns how many failed with 40001."""
    failures = 0
    with psycopg.connect(dsn) as first, psycopg.connect(dsn) as second:
        for _ in range(5):
            for conn in (first, second):
                for statement in isolation:
                    conn.execute(statement)
                conn.execute(read, POST).fetchone()
            for conn in (first, second):
                try:
                    conn.execute(insert, POST)
                    conn.execute(charge, POST)
                    conn.commit()
                except psycopg.errors.SerializationFailure:
                    conn.rollback()  # no retry: the request fails
                    failures += 1
        flush_stats(first)
        flush_stats(second)
    return failures


def test_the_detector_counts_serialization_failures_of_the_naive_transaction(pgss_dsn: str) -> None:  # noqa: F811
    with psycopg.connect(pgss_dsn, autocommit=True) as conn:
        seed_chat(conn, messages=100)
        run_block(conn, ENTRY, "setup")
    isolation, read, insert, charge = statements(fix_blocks(ENTRY)["naive"])
    locked_read, *_ = statements(fix_blocks(ENTRY)["fixed"])
    failures: list[int] = []

    def window(work: Any) -> set[str]:
        before = take_snapshot(pgss_dsn)
        failures.append(work())
        return ids(run_detectors(pgss_dsn, before, explain_top=False)[0])

    assert ENTRY in window(lambda: _posts_overlapping(pgss_dsn, [isolation], read, insert, charge))
    assert failures[-1] == 5

    def fixed() -> int:  # the same posts, each locking the account row first: one after the other
        with psycopg.connect(pgss_dsn) as app:
            for _ in range(10):
                app.execute(locked_read, POST).fetchone()
                app.execute(insert, POST)
                app.execute(charge, POST)
                app.commit()
            flush_stats(app)
        return 0

    assert ENTRY not in window(fixed)


def _post_concurrently(url: str, count: int) -> list[tuple[int, Any]]:
    def post(index: int) -> tuple[int, Any]:
        return call(f"{url}/conversations/{1 + index % 5}/prompts", "POST", {"user_id": 1, "body": "a b c"})

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(post, range(count)))


def test_the_naive_path_fails_overlapping_posts_and_the_fixed_path_posts_each_once(pg_dsn: str) -> None:
    seed(pg_dsn, TINY)
    dsn = lab_dsn(pg_dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        run_block(conn, ENTRY, "setup")
    statuses = {}
    for naive in (True, False):
        with psycopg.connect(dsn, autocommit=True) as conn:
            (before,) = conn.execute("SELECT tokens_used FROM users WHERE id = 1").fetchone() or (0,)
        with running_service(dsn, frozenset({ENTRY} if naive else set())) as url:
            answers = _post_concurrently(url, 80)
            assert call(f"{url}/conversations/1/prompts", "POST", {"user_id": 9, "body": "x"})[0] == 402
        statuses[naive] = [status for status, _ in answers]
        with psycopg.connect(dsn, autocommit=True) as conn:
            (after,) = conn.execute("SELECT tokens_used FROM users WHERE id = 1").fetchone() or (0,)
            assert invariants.lost_updates(conn) == 0  # a failed post rolled back its message and its charge
        assert after - before == 3 * statuses[naive].count(201)
    assert 500 in statuses[True] and set(statuses[True]) <= {201, 500}
    assert set(statuses[False]) == {201}
