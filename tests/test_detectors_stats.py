"""Statistics rules on a live server: each situation is built for real (the naive statements of the
reference fix run the way an application runs them), the rule fires over a window between two
snapshots, and after the fix the same work leaves the rule quiet."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from test_detectors_support import flush_stats, ids, of, pgss_dsn, run_block, seed_chat, statements  # noqa: F401

from pglab.lab.core.fixes import fix_blocks
from pglab.lab.runtime.diagnose import run_detectors, take_snapshot


def window(dsn: str, work: Callable[[], None], **kwargs: Any) -> set[str]:
    """Ids the detectors report over a window in which `work` ran."""
    before = take_snapshot(dsn)
    work()
    findings, _ = run_detectors(dsn, before, **kwargs)
    return ids(findings)


def block(entry_id: str, name: str) -> list[str]:
    return statements(fix_blocks(entry_id)[name])


def seeded(dsn: str, **sizes: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        seed_chat(conn, **sizes)


def test_n_plus_one(pgss_dsn: str) -> None:  # noqa: F811
    seeded(pgss_dsn)
    page, author = block("n_plus_one", "naive")
    (joined,) = block("n_plus_one", "fixed")

    def naive() -> None:
        with psycopg.connect(pgss_dsn) as app:
            for conversation_id in range(1, 21):  # twenty requests, one transaction each
                for row in app.execute(page, {"conversation_id": conversation_id, "page_size": 20}).fetchall():
                    app.execute(author, {"user_id": row[1]}).fetchall()
                app.commit()
            flush_stats(app)

    def fixed() -> None:
        with psycopg.connect(pgss_dsn) as app:
            for conversation_id in range(1, 21):
                app.execute(joined, {"conversation_id": conversation_id, "page_size": 20}).fetchall()
                app.commit()
            flush_stats(app)

    assert "n_plus_one" in window(pgss_dsn, naive, explain_top=False)
    assert "n_plus_one" not in window(pgss_dsn, fixed, explain_top=False)


def test_fanout_loop(pgss_dsn: str) -> None:  # noqa: F811
    seeded(pgss_dsn, users=30)
    recipients, insert = block("fanout_loop", "naive")
    (fanout,) = block("fanout_loop", "fixed")

    def naive() -> None:
        with psycopg.connect(pgss_dsn) as app:
            for _ in range(10):  # ten broadcasts, one transaction each
                for (user_id,) in app.execute(recipients).fetchall():
                    app.execute(insert, {"user_id": user_id, "kind": "broadcast"})
                app.commit()
            flush_stats(app)

    def fixed() -> None:
        with psycopg.connect(pgss_dsn) as app:
            for _ in range(10):
                app.execute(fanout, {"kind": "broadcast"})
                app.commit()
            flush_stats(app)

    assert "fanout_loop" in window(pgss_dsn, naive, explain_top=False)
    assert "fanout_loop" not in window(pgss_dsn, fixed, explain_top=False)


def test_per_row_update(pgss_dsn: str) -> None:  # noqa: F811
    seeded(pgss_dsn, notifications=20_000)
    unread, update = block("per_row_update", "naive")
    (mark_all,) = block("per_row_update", "fixed")

    def naive() -> None:
        with psycopg.connect(pgss_dsn) as app:
            for user_id in range(1, 6):
                for (notification_id,) in app.execute(unread, {"user_id": user_id}).fetchall():
                    app.execute(update, {"id": notification_id})
                app.commit()
            flush_stats(app)

    def fixed() -> None:
        with psycopg.connect(pgss_dsn) as app:
            for user_id in range(6, 11):
                app.execute(mark_all, {"user_id": user_id})
                app.commit()
            flush_stats(app)

    assert "per_row_update" in window(pgss_dsn, naive, explain_top=False)
    assert "per_row_update" not in window(pgss_dsn, fixed, explain_top=False)


def test_count_per_request(pgss_dsn: str) -> None:  # noqa: F811
    seeded(pgss_dsn, notifications=20_000)
    _, badge = block("count_per_request", "naive")  # the page header's name, then the badge
    _, stored = block("count_per_request", "fixed")
    page = "SELECT id, title FROM conversations WHERE owner_id = %(user_id)s ORDER BY updated_at DESC LIMIT 20"

    def requests(badge_query: str) -> Callable[[], None]:
        def run() -> None:
            with psycopg.connect(pgss_dsn, autocommit=True) as app:
                for request in range(150):
                    app.execute(page, {"user_id": 1 + request % 200}).fetchall()
                    app.execute(badge_query, {"user_id": 1 + request % 200}).fetchall()
        return run

    assert "count_per_request" in window(pgss_dsn, requests(badge), explain_top=False)
    with psycopg.connect(pgss_dsn, autocommit=True) as conn:
        run_block(conn, "count_per_request", "migrate")
    assert "count_per_request" not in window(pgss_dsn, requests(stored), explain_top=False)
    # a count run now and then (a report) is no request-path count
    assert "count_per_request" not in window(pgss_dsn, lambda: requests_then_report(pgss_dsn, badge, page))


def requests_then_report(dsn: str, badge: str, page: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as app:
        for request in range(150):
            app.execute(page, {"user_id": 1 + request % 200}).fetchall()
        app.execute(badge, {"user_id": 1}).fetchall()


def test_unbounded_results(pgss_dsn: str) -> None:  # noqa: F811
    seeded(pgss_dsn, conversations=20)  # 1,500 messages a conversation
    (every,) = block("unbounded_results", "naive")
    newest, _ = block("unbounded_results", "fixed")

    def run(sql: str, params: dict[str, int]) -> Callable[[], None]:
        def calls() -> None:
            with psycopg.connect(pgss_dsn, autocommit=True) as app:
                for _ in range(5):
                    app.execute(sql, params).fetchall()
        return calls

    assert "unbounded_results" in window(pgss_dsn, run(every, {"conversation_id": 1}), explain_top=False)
    assert "unbounded_results" not in window(pgss_dsn, run(newest, {"conversation_id": 1, "rows": 51}),
                                             explain_top=False)


def test_bulk_delete(pgss_dsn: str) -> None:  # noqa: F811
    seeded(pgss_dsn, notifications=30_000)
    (purge,) = block("bulk_delete", "naive")
    (batch,) = block("bulk_delete", "fixed")
    keep = {"now": datetime.now(UTC), "keep": "2 hours"}
    age = "UPDATE notifications SET created_at = now() - id * interval '1 second'"  # 30,000 s: 8 hours

    def naive() -> None:
        with psycopg.connect(pgss_dsn, autocommit=True) as app:
            assert app.execute(purge, keep).rowcount > 20_000

    def fixed() -> None:
        with psycopg.connect(pgss_dsn, autocommit=True) as app:
            while app.execute(batch, keep).rowcount:
                pass

    with psycopg.connect(pgss_dsn, autocommit=True) as conn:
        conn.execute(age)
    found = window(pgss_dsn, naive, explain_top=False)
    assert "bulk_delete" in found
    with psycopg.connect(pgss_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO notifications (user_id, kind, created_at) SELECT 1 + i % 200, 'old',"
                     " now() - interval '3 hours' - i * interval '1 second' FROM generate_series(1, 25000) i")
        run_block(conn, "bulk_delete", "migrate")
    assert "bulk_delete" not in window(pgss_dsn, fixed, explain_top=False)


def _load(dsn: str, threads: int, seconds: float, admit: threading.Semaphore | None = None) -> None:
    """`threads` clients sending a statement that needs one serialized resource, for `seconds`.
    With `admit`, a client that finds no free slot is refused at once (shed) instead of queueing."""
    deadline = time.monotonic() + seconds

    def client() -> None:
        with psycopg.connect(dsn, autocommit=True) as app:
            while time.monotonic() < deadline:
                if admit is not None and not admit.acquire(blocking=False):
                    time.sleep(0.01)  # the 503 path: refused, the client backs off
                    continue
                try:
                    app.execute("SELECT pg_advisory_xact_lock(42), pg_sleep(0.01)")
                finally:
                    if admit is not None:
                        admit.release()

    workers = [threading.Thread(target=client) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def test_no_load_shedding(pgss_dsn: str) -> None:  # noqa: F811
    def trend(overload: Callable[[], None]) -> set[str]:
        first = take_snapshot(pgss_dsn)
        _load(pgss_dsn, threads=1, seconds=1.0)
        second = take_snapshot(pgss_dsn, previous=first)
        overload()
        findings, _ = run_detectors(pgss_dsn, second, explain_top=False)
        return ids(findings)

    assert "no_load_shedding" in trend(lambda: _load(pgss_dsn, threads=6, seconds=1.0))
    assert "no_load_shedding" not in trend(lambda: _load(pgss_dsn, threads=6, seconds=1.0,
                                                          admit=threading.Semaphore(1)))
    # with one window there is no trend to judge
    assert "no_load_shedding" not in window(pgss_dsn, lambda: _load(pgss_dsn, threads=6, seconds=0.5))


def test_missing_index_from_statistics_and_top_statements(pg_dsn: str) -> None:
    seeded(pg_dsn)
    (lookup,) = block("missing_index", "naive")

    def lookups() -> None:
        with psycopg.connect(pg_dsn, autocommit=True) as app:
            for conversation_id in range(1, 21):
                app.execute(lookup, {"conversation_id": conversation_id}).fetchall()
            flush_stats(app)

    before = take_snapshot(pg_dsn)
    lookups()
    findings, notes = run_detectors(pg_dsn, before)
    found = of(findings, "missing_index")
    assert any(f.evidence["subject"] == "table messages" for f in found)
    if before.statements is not None:  # the plan of the top statement names the filter
        assert any("plan_excerpt" in f.evidence and "conversation_id" in f.evidence["plan_excerpt"] for f in found)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        run_block(conn, "missing_index", "migrate")
        conn.execute("ANALYZE messages")
    assert "missing_index" not in window(pg_dsn, lookups)


def test_plan_rules_run_on_the_costliest_statements(pgss_dsn: str) -> None:  # noqa: F811
    seeded(pgss_dsn)
    with psycopg.connect(pgss_dsn, autocommit=True) as app:
        run_block(app, "sort_without_index", "setup")  # five owners with 40,000 conversations each
        for _ in range(3):
            app.execute(block("ilike_scan", "naive")[0], {"pattern": "%needle%"}).fetchall()
            app.execute(block("sort_without_index", "naive")[0], {"user_id": 1}).fetchall()
    findings, _ = run_detectors(pgss_dsn)
    for entry_id in ("ilike_scan", "sort_without_index"):
        found = of(findings, entry_id)
        assert found and found[0].source and found[0].evidence["statement"]["calls"] >= 3, entry_id


def test_write_amplification(pg_dsn: str) -> None:
    seeded(pg_dsn)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        run_block(conn, "write_amplification", "setup")
    (insert,) = block("write_amplification", "naive")
    (read,) = block("missing_index", "naive")  # the conversation's page, served by (conversation_id, created_at)

    def writes() -> None:
        with psycopg.connect(pg_dsn, autocommit=True) as app:
            with app.cursor() as cursor:
                cursor.executemany(insert, [{"conversation_id": 1 + i % 200, "user_id": 1, "body": "hi",
                                             "metadata": '{"source": "ci"}'} for i in range(1200)])
            for conversation_id in range(1, 11):
                app.execute(read, {"conversation_id": conversation_id}).fetchall()
            flush_stats(app)

    before = take_snapshot(pg_dsn)
    writes()
    # over a window of seconds, an index not scanned yet is not unused: only the duplicate is redundant
    findings, _ = run_detectors(pg_dsn, before, explain_top=False)
    (found,) = of(findings, "write_amplification")
    assert set(found.evidence["redundant_indexes"]) == {"messages_conversation_id_only_idx"}
    # counters that covered a day with no scan would make the others unused too
    long_window = {"write_amplification": {"min_unused_seconds": 0}}
    findings, _ = run_detectors(pg_dsn, before, explain_top=False, thresholds=long_window)
    (found,) = of(findings, "write_amplification")
    assert set(found.evidence["redundant_indexes"]) == {
        "messages_conversation_id_only_idx", "messages_tokens_idx", "messages_metadata_idx"}
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        run_block(conn, "write_amplification", "migrate")
    assert "write_amplification" not in window(pg_dsn, writes, explain_top=False, thresholds=long_window)


def test_missing_fk_index(pg_dsn: str) -> None:
    seeded(pg_dsn, notifications=20_000)
    findings, _ = run_detectors(pg_dsn, explain_top=False)
    flagged = {f.evidence["subject"] for f in of(findings, "missing_fk_index")}
    assert {"foreign key messages_conversation_id_fkey", "foreign key messages_user_id_fkey",
            "foreign key notifications_message_id_fkey"} <= flagged
    assert "foreign key conversations_owner_id_fkey" not in flagged  # 200 rows: too small to matter
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        run_block(conn, "missing_fk_index", "migrate")
        conn.execute("ANALYZE")
    findings, _ = run_detectors(pg_dsn, explain_top=False)
    still = {f.evidence["subject"] for f in of(findings, "missing_fk_index")}
    assert not still & {"foreign key messages_user_id_fkey", "foreign key notifications_message_id_fkey"}


@pytest.mark.parametrize("entry_id", ["count_per_request", "n_plus_one"])
def test_statement_rules_report_a_note_without_pg_stat_statements(pg_dsn: str, entry_id: str) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("DROP EXTENSION IF EXISTS pg_stat_statements")
    findings, notes = run_detectors(pg_dsn)
    assert entry_id not in ids(findings)
    assert any("pg_stat_statements is not installed" in note for note in notes)


def test_independent_requests_are_not_loops(pgss_dsn: str) -> None:  # noqa: F811
    """Many single-row reads and writes, each from its own request (its own transaction), with no
    SELECT whose rows drive them: busy, not looping."""
    seeded(pgss_dsn, notifications=2_000)

    def requests() -> None:
        with psycopg.connect(pgss_dsn, autocommit=True) as app:
            for request in range(300):
                app.execute("SELECT id, body FROM messages WHERE id = %s", (request + 1,)).fetchall()
                app.execute("UPDATE notifications SET read_at = now() WHERE id = %s", (request + 1,))
                app.execute("INSERT INTO notifications (user_id, kind) VALUES (%s, 'ping')", (1 + request % 200,))
            flush_stats(app)

    assert not {"n_plus_one", "per_row_update", "fanout_loop"} & window(pgss_dsn, requests, explain_top=False)
