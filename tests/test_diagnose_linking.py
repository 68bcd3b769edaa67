"""What ties runtime evidence to its source (issue 11): a loop to the query it runs after, through
pg_stat_activity sampled in one session during `--watch`, never through call counts that happen
to line up; and a serialization failure in the server log to the database that logged it."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from test_detectors_support import flush_stats, ids, of, pgss_dsn  # noqa: F401

from cli import run_pglab
from pglab.lab.postgres.testdbs import TestServer, cloned_database
from pglab.lab.runtime.diagnose import diagnose_window, take_snapshot
from pglab.lab.runtime.serverlog import prefix_pattern, serialization_failures

LIST = "SELECT id FROM orders WHERE customer_id = %s ORDER BY created_at DESC LIMIT 20"
LOOKUP = "SELECT status FROM shipments WHERE order_id = %s"


@pytest.fixture(autouse=True)
def own_state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


@pytest.fixture
def orders(pgss_dsn: str) -> str:  # noqa: F811
    """Orders (customer 1 owns a third, so listing them sorts a few thousand rows) and a shipment each."""
    with psycopg.connect(pgss_dsn, autocommit=True) as conn:
        conn.execute("""
            CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL, created_at timestamptz NOT NULL);
            CREATE INDEX ON orders (customer_id);
            CREATE TABLE shipments (id bigint PRIMARY KEY, order_id bigint NOT NULL, status text NOT NULL);
            CREATE INDEX ON shipments (order_id);
            INSERT INTO orders SELECT i, CASE WHEN i % 3 = 0 THEN 1 ELSE 2 + i % 500 END,
                                      now() - i * interval '1 minute' FROM generate_series(1, 20000) i;
            INSERT INTO shipments SELECT i, i, 'delivered' FROM generate_series(1, 20000) i;
            ANALYZE""")
    return pgss_dsn


def while_watched(dsn: str, *workers: Callable[[threading.Event], None], watch: str = "4") -> dict[str, Any]:
    """`pglab diagnose --watch` (JSON) while `workers` run in threads until it is done."""
    done = threading.Event()
    threads = [threading.Thread(target=worker, args=(done,)) for worker in workers]
    for thread in threads:
        thread.start()
    try:
        result = run_pglab("diagnose", "--dsn", dsn, "--watch", watch, "--format", "json", "--no-explain")
    finally:
        done.set()
        for thread in threads:
            thread.join()
    assert result.returncode in (0, 1), result.stderr
    return dict(json.loads(result.stdout))


def about_lookups(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for f in document["findings"] if f["id"] == "n_plus_one" and "FROM shipments" in (f.get("source") or "")]


def test_an_n_plus_one_in_autocommit_mode_is_found_with_its_parent(orders: str) -> None:
    """Each lookup its own transaction: calls compared with transactions never saw this loop."""
    def request_loop(done: threading.Event) -> None:
        with psycopg.connect(orders, autocommit=True) as app:
            customer = 0
            while not done.is_set():
                customer = customer % 50 + 1
                for (order_id,) in app.execute(LIST, (customer,)).fetchall():
                    app.execute(LOOKUP, (order_id,)).fetchall()

    document = while_watched(orders, request_loop)
    (found,) = about_lookups(document)
    evidence = found["evidence"]
    assert "FROM orders WHERE customer_id" in evidence["parent"], found["message"]
    assert evidence["calls_per_parent_call"] >= 5 and evidence["sampled_steps"] >= 2 and evidence["sessions"] == 1
    assert "per call of `SELECT id FROM orders" in found["message"]
    # without --watch nothing ties the calls together: the rule says it needs a window, not a guess
    plain = json.loads(run_pglab("diagnose", "--dsn", orders, "--format", "json", "--no-explain").stdout)
    assert "n_plus_one" not in {f["id"] for f in plain["findings"]}
    assert any("n_plus_one did not run" in d["message"] and "--watch" in d["message"] for d in plain["diagnostics"])


def test_a_worker_repeating_lookups_beside_list_traffic_is_no_loop_of_the_list(orders: str) -> None:
    """A background thread looks up ids it holds, 200 per transaction, while another session lists
    orders in autocommit mode: the lookups outnumber all transactions 5 to 1, but nothing ties them
    to the list query, which runs in another session."""
    def lister(done: threading.Event) -> None:
        with psycopg.connect(orders, autocommit=True) as app:
            while not done.wait(0.02):
                app.execute(LIST, (1,)).fetchall()

    def worker(done: threading.Event) -> None:
        with psycopg.connect(orders) as app:
            while not done.is_set():
                for order_id in range(1, 201):
                    app.execute(LOOKUP, (order_id,)).fetchall()
                app.commit()

    document = while_watched(orders, lister, worker)
    assert not about_lookups(document), [f["message"] for f in about_lookups(document)]
    assert not [f for f in document["findings"] if "FROM orders" in str(f["evidence"].get("parent", ""))]


# serialization failures belong to the database that logged them


def write_skew(dsn: str, rounds: int) -> int:
    """Two SERIALIZABLE transactions that each read both rows and write a different one: the second
    to commit fails with 40001. Returns the failures."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS duty (id int PRIMARY KEY, on_call int NOT NULL)")
        conn.execute("INSERT INTO duty VALUES (1, 1), (2, 1) ON CONFLICT DO NOTHING")
    failures = 0
    with psycopg.connect(dsn) as first, psycopg.connect(dsn) as second:
        for _ in range(rounds):
            for conn in (first, second):
                conn.execute("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
                conn.execute("SELECT sum(on_call) FROM duty").fetchone()
            first.execute("UPDATE duty SET on_call = 0 WHERE id = 1")
            second.execute("UPDATE duty SET on_call = 0 WHERE id = 2")
            first.commit()
            try:
                second.commit()
            except psycopg.errors.SerializationFailure:
                failures += 1
            second.rollback()
            first.execute("UPDATE duty SET on_call = 1")
            first.commit()
        flush_stats(first)
    return failures


@pytest.fixture
def other_database(pg_server: TestServer, pg_template: str) -> Iterator[str]:
    with cloned_database(pg_server, pg_template) as dsn:
        yield dsn


def test_serialization_failures_of_another_database_are_not_counted(pg_dsn: str, other_database: str) -> None:
    write_skew(pg_dsn, 1)  # the table, before the window
    before = take_snapshot(pg_dsn)
    assert write_skew(other_database, 5) == 5
    elsewhere = diagnose_window(pg_dsn, before, explain_top=False)
    assert elsewhere.window is not None
    if elsewhere.window.serialization_failures is None:
        pytest.skip(f"this server's log cannot be counted here: {elsewhere.notes}")
    assert elsewhere.window.serialization_failures == 0
    assert "serializable_no_retry" not in ids(elsewhere.findings)
    before = take_snapshot(pg_dsn)
    assert write_skew(pg_dsn, 5) == 5
    here = diagnose_window(pg_dsn, before, explain_top=False)
    assert here.window is not None and here.window.serialization_failures == 5
    (found,) = of(here.findings, "serializable_no_retry")
    assert found.evidence["serialization_failures"] == 5


def test_a_log_that_does_not_name_the_database_is_not_counted() -> None:
    line = "2025-01-02 10:00:00.123 UTC [4242] ERROR:  could not serialize access due to read/write dependencies"
    count, note = serialization_failures(line + "\n", "%m [%p] ", "shop")
    assert count is None and note is not None and "does not name the database (%d)" in note
    assert serialization_failures("nothing failed\n", "%m [%p] ", "shop") == (0, None)
    named = "\n".join([
        "2025-01-02 10:00:00.123 UTC [4242] app@shop ERROR:  could not serialize access due to concurrent update",
        "2025-01-02 10:00:00.124 UTC [4243] app@shop2 ERROR:  could not serialize access due to concurrent update",
        "2025-01-02 10:00:00.125 UTC [4243] app@shop STATEMENT:  SELECT 'could not serialize access'",
    ])
    assert serialization_failures(named, "%m [%p] %q%u@%d ", "shop") == (1, None)
    padded = prefix_pattern("%t %-8d|", "shop")
    assert padded is not None and padded.match("2025-01-02 10:00:00 UTC shop    |ERROR")
