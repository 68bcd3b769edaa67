"""Session rules on a live server: real concurrent sessions (held transactions, lock queues, long
statements, crowds of connections) trip their rule; the reference fix's way of doing the same
work leaves it quiet."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import psycopg
import pytest
from test_detectors_support import ids, of, seed_chat, statements

from conftest import embedded_only
from pglab.lab.core.fixes import fix_blocks
from pglab.lab.postgres.launcher import EmbeddedPostgres, free_port
from pglab.lab.runtime.diagnose import run_detectors


def block(entry_id: str, name: str) -> list[str]:
    return statements(fix_blocks(entry_id)[name])


@pytest.fixture
def chat_dsn(pg_dsn: str) -> str:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        seed_chat(conn, messages=2_000, notifications=2_000)
    return pg_dsn


def detected(dsn: str, **thresholds: dict[str, float]) -> set[str]:
    findings, _ = run_detectors(dsn, explain_top=False, thresholds=thresholds)
    return ids(findings)


@contextmanager
def in_background(work: Callable[[], None]) -> Iterator[threading.Thread]:
    thread = threading.Thread(target=work)
    thread.start()
    try:
        yield thread
    finally:
        thread.join(timeout=30)


def wait_for(condition: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the situation did not build up in time"
        time.sleep(0.05)


def test_streaming_txn(chat_dsn: str) -> None:
    insert, update_body, charge = block("streaming_txn", "naive")
    reply = {"conversation_id": 1, "user_id": 1, "body": "streamed reply", "tokens": 12}
    with psycopg.connect(chat_dsn) as app:  # naive: one transaction around the whole stream
        (message_id,) = app.execute(insert, reply).fetchone() or (0,)
        time.sleep(1.2)  # the model streams; the session sits idle in transaction
        found = run_detectors(chat_dsn, explain_top=False)[0]
        app.execute(update_body, {**reply, "id": message_id})
        app.execute(charge, reply)
        app.commit()
    (finding,) = of(found, "streaming_txn")
    assert finding.evidence["idle_in_transaction_seconds"] >= 1.0 and "INSERT INTO messages" in (finding.source or "")
    with psycopg.connect(chat_dsn, autocommit=True) as app:  # fixed: each statement commits on its own
        (message_id,) = app.execute(insert, reply).fetchone() or (0,)
        time.sleep(1.2)
        assert "streaming_txn" not in detected(chat_dsn)
        app.execute(update_body, {**reply, "id": message_id})
        app.execute(charge, reply)


def test_missing_timeouts(chat_dsn: str) -> None:
    limits = {"missing_timeouts": {"min_seconds": 1.0}}

    def long_statement(options: str = "") -> Callable[[], None]:
        def run() -> None:
            with psycopg.connect(chat_dsn, autocommit=True, options=options) as app, \
                    suppress(psycopg.errors.QueryCanceled):
                app.execute("SELECT pg_sleep(2.5)")
        return run

    with in_background(long_statement()):
        time.sleep(1.3)
        found = run_detectors(chat_dsn, explain_top=False, thresholds=limits)[0]
    (finding,) = of(found, "missing_timeouts")
    assert finding.evidence["settings"]["statement_timeout"] == "0"
    with in_background(long_statement("-c statement_timeout=1000")):  # the fix: the session's own timeout
        time.sleep(1.3)
        assert "missing_timeouts" not in detected(chat_dsn, **limits)


def test_write_contention(chat_dsn: str) -> None:
    insert, hot_update = block("write_contention", "naive")
    (plain_insert,) = block("write_contention", "fixed")
    post = {"conversation_id": 1, "user_id": 1, "body": "hi"}

    def poster(sql_statements: list[str], release: threading.Event) -> Callable[[], None]:
        def run() -> None:
            with psycopg.connect(chat_dsn) as app:
                for sql in sql_statements:
                    app.execute(sql, post)
                release.wait(10)
                app.commit()
        return run

    def waiting() -> int:
        with psycopg.connect(chat_dsn, autocommit=True) as conn:
            row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                               "AND datname = current_database()").fetchone()
        return int(row[0]) if row else 0

    for sql_statements, expect in (([insert, hot_update], True), ([plain_insert], False)):
        release = threading.Event()
        threads = [threading.Thread(target=poster(sql_statements, release)) for _ in range(3)]
        for thread in threads:
            thread.start()
        try:
            if expect:
                wait_for(lambda: waiting() >= 2)
            else:
                time.sleep(0.5)
            findings = run_detectors(chat_dsn, explain_top=False)[0]
        finally:
            release.set()
            for thread in threads:
                thread.join(timeout=30)
        found = of(findings, "write_contention")
        assert bool(found) == expect, [f.message for f in found]
        if expect:
            assert found[0].evidence["relation"] == "conversations"
            assert len(found[0].evidence["waiting_pids"]) == 2


@embedded_only("needs a server of its own with a small max_connections")
def test_pool_exhaustion() -> None:
    with EmbeddedPostgres(settings={"max_connections": "12"}) as server:  # 9 slots for ordinary clients
        dsn = server.dsn()
        crowd = [psycopg.connect(dsn, autocommit=True) for _ in range(8)]  # a connection per request
        try:
            findings = run_detectors(dsn, explain_top=False)[0]
        finally:
            for conn in crowd:
                conn.close()
        (finding,) = of(findings, "pool_exhaustion")
        assert finding.severity == "error" and finding.evidence["limit"] == 9
        pool = [psycopg.connect(dsn, autocommit=True) for _ in range(3)]  # one bounded shared pool
        try:
            assert "pool_exhaustion" not in ids(run_detectors(dsn, explain_top=False)[0])
        finally:
            for conn in pool:
                conn.close()


@embedded_only("needs a server of its own with every connection slot taken")
def test_pool_exhaustion_when_even_diagnose_is_refused() -> None:
    with EmbeddedPostgres(settings={"max_connections": "5", "superuser_reserved_connections": "0"}) as server:
        dsn = server.dsn()
        crowd = [psycopg.connect(dsn, autocommit=True) for _ in range(5)]
        try:
            findings, notes = run_detectors(dsn)
        finally:
            for conn in crowd:
                conn.close()
        (finding,) = of(findings, "pool_exhaustion")
        assert "too many clients" in finding.evidence["refusal"] and notes
    with pytest.raises(Exception, match="cannot connect"):  # any other refusal is still an error
        run_detectors(f"postgresql://postgres@127.0.0.1:{free_port()}/postgres")


def test_sessions_of_other_databases_are_not_judged(chat_dsn: str, pg_server: Any) -> None:
    with psycopg.connect(pg_server.dsn) as elsewhere:  # idle in transaction in another database
        elsewhere.execute("SELECT 1")
        time.sleep(1.2)
        assert "streaming_txn" not in detected(chat_dsn)
        elsewhere.rollback()
