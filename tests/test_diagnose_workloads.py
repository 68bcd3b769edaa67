"""`pglab diagnose` on workloads nobody wrote for it (issue 11): one test per way the detectors went
wrong on a logistics database, each with the near miss that used to be reported.

The schema (customers, orders, shipments) is small and skewed on purpose: one customer owns a large
share of the orders, and most shipments are delivered while few are in transit.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import ClientCursor
from test_detectors_support import flush_stats, ids, of, statements_available

from cli import run_pglab
from pglab.lab.postgres.testdbs import TEST_DSN_VARIABLE, TestServer, cloned_database, template_database
from pglab.lab.runtime.diagnose import diagnose_window, run_detectors, take_snapshot
from pglab.lab.runtime.plans import check_statement
from pglab.lab.runtime.values import untyped_literals

SCHEMA = """
CREATE TABLE customers (id bigint PRIMARY KEY, name text NOT NULL, region text, vip boolean NOT NULL);
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers,
                     amount numeric NOT NULL, created_at timestamptz NOT NULL);
CREATE INDEX orders_customer_id_idx ON orders (customer_id);
CREATE TABLE shipments (id bigint PRIMARY KEY, order_id bigint NOT NULL REFERENCES orders, status text NOT NULL,
                        carrier text, created_at timestamptz NOT NULL);
CREATE INDEX shipments_order_id_idx ON shipments (order_id);
CREATE INDEX shipments_in_transit_idx ON shipments (created_at) WHERE status = 'in_transit';
CREATE INDEX shipments_carrier_idx ON shipments (carrier);
"""


def seed(conn: psycopg.Connection[Any], customers: int = 20_000, orders: int = 60_000) -> None:
    """Customer 1 owns a third of the orders; 2 % of shipments are in transit."""
    conn.execute(SCHEMA)
    conn.execute(f"INSERT INTO customers SELECT i, 'customer ' || i, CASE WHEN i % 7 = 0 THEN NULL ELSE 'r' || i % 9 "
                 f"END, i % 20 = 0 FROM generate_series(1, {customers}) i")
    conn.execute(f"INSERT INTO orders SELECT i, CASE WHEN i % 3 = 0 THEN 1 ELSE 2 + i % {customers - 1} END, "
                 f"(i % 97) + 0.5, now() - i * interval '1 minute' FROM generate_series(1, {orders}) i")
    conn.execute(f"INSERT INTO shipments SELECT i, i, CASE WHEN i % 50 = 0 THEN 'in_transit' ELSE 'delivered' END, "
                 f"CASE WHEN i % 4 = 0 THEN NULL ELSE 'carrier ' || i % 5 END, now() - i * interval '1 minute' "
                 f"FROM generate_series(1, {orders}) i")
    conn.execute("ANALYZE")


def _seed_template(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        seed(conn)
        if statements_available(dsn):
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")


@pytest.fixture(scope="module")
def shop_template(pg_server: TestServer) -> Iterator[str]:
    """The logistics data, seeded once per module; each test gets a clone."""
    with template_database(pg_server, _seed_template) as name:
        yield name


@pytest.fixture
def shop_plans(pg_server: TestServer, shop_template: str) -> Iterator[str]:
    """A fresh clone, for plan rules alone: no pg_stat_statements needed (PostgreSQL 15 too)."""
    with cloned_database(pg_server, shop_template) as dsn:
        yield dsn


@pytest.fixture
def shop(shop_plans: str) -> str:
    """A fresh clone with pg_stat_statements; skipped where the server does not preload it."""
    if not statements_available(shop_plans):
        pytest.skip("this server does not preload pg_stat_statements (the PostgreSQL 15 pass)")
    return shop_plans


def judged(dsn: str, work: Callable[[], None], **kwargs: Any) -> tuple[list[Any], list[str]]:
    before = take_snapshot(dsn)
    work()
    return run_detectors(dsn, before, **kwargs)


def about(findings: list[Any], fragment: str) -> list[Any]:
    """Findings whose statement contains `fragment`."""
    return [f for f in findings if fragment in (f.source or "")]


# 1. plans for real values


def test_a_partial_index_that_serves_the_query_is_not_a_missing_index(shop: str) -> None:
    query = "SELECT id, order_id FROM shipments WHERE status = %s ORDER BY created_at LIMIT 20"

    def work() -> None:
        with psycopg.connect(shop, autocommit=True) as app:
            for _ in range(30):
                app.execute(query, ("in_transit",)).fetchall()

    findings, notes = judged(shop, work)
    assert not about(findings, "FROM shipments WHERE status"), [f.message for f in findings]
    # near miss: the same text planned generically (status unknown) is a seq scan over every shipment
    with psycopg.connect(shop, autocommit=True) as conn:
        generic = check_statement(conn, query.replace("%s", "$1"), analyze=False)
    assert {"missing_index", "sort_without_index"} & ids(generic)


def test_the_busiest_key_gets_its_own_plan(shop: str) -> None:
    """A running total that is cheap for most customers and quadratic for the one with a third of
    the orders: the generic plan assumes an average customer and misses it."""
    query = ("SELECT o.id, (SELECT sum(e.amount) FROM orders e WHERE e.customer_id = o.customer_id AND e.id <= o.id) "
             "FROM orders o WHERE o.customer_id = %s ORDER BY o.id DESC")

    def work() -> None:
        with psycopg.connect(shop, autocommit=True) as app:
            for customer in range(2, 40):
                app.execute(query, (customer,)).fetchall()

    findings, _ = judged(shop, work)
    (found,) = of(findings, "correlated_subquery")
    assert found.evidence["plan"] == "custom (values from pg_stats)"
    assert found.evidence["plan_values"]["$1"]["value"] == "1" and "(plan: custom" in found.message
    with psycopg.connect(shop, autocommit=True) as conn:  # near miss: an average customer's plan is fine
        assert "correlated_subquery" not in ids(check_statement(conn, query.replace("%s", "$1"), analyze=False))


def test_a_rare_heavy_analytical_query_is_left_alone(shop: str) -> None:
    """A report run once reads everything by design: no index would serve it, and it is no request path."""
    report = ("SELECT o.customer_id, count(*), sum(o.amount) FROM orders o JOIN shipments s ON s.order_id = o.id "
              "GROUP BY o.customer_id ORDER BY 3 DESC LIMIT 10")

    def work() -> None:
        with psycopg.connect(shop, autocommit=True) as app:
            for order in range(1, 200):
                app.execute("SELECT status FROM shipments WHERE order_id = %s", (order,)).fetchall()
            app.execute(report).fetchall()
            flush_stats(app)

    findings, _ = judged(shop, work)
    assert not about(findings, "GROUP BY o.customer_id"), [f.message for f in findings]
    assert not ids(findings) & {"missing_index", "count_per_request", "unbounded_results"}


def test_a_deep_offset_is_seen_in_the_sampled_text(shop: str) -> None:
    """Clients that bind on the client side send the offset in the text; pg_stat_activity keeps it
    (the last statement of an idle session), pg_stat_statements does not."""
    query = "SELECT id, amount FROM orders ORDER BY created_at DESC LIMIT 20 OFFSET %s"
    with psycopg.connect(shop, autocommit=True, cursor_factory=ClientCursor) as app:
        before = take_snapshot(shop)
        for page in range(2_000, 2_010):
            app.execute(query, (page * 20,)).fetchall()
        findings, _ = run_detectors(shop, before)
    (found,) = of(findings, "offset_pagination")
    assert found.evidence["plan"] == "sampled" and found.evidence["rows_skipped"] >= 40_000
    # near miss: page 1 with the same code
    with psycopg.connect(shop, autocommit=True, cursor_factory=ClientCursor) as app:
        before = take_snapshot(shop)
        for _ in range(10):
            app.execute(query, (0,)).fetchall()
        findings, _ = run_detectors(shop, before)
    assert "offset_pagination" not in ids(findings)


def _skip_without_auto_explain_samples(dsn: str) -> None:
    """The auto_explain test needs what pglab's own server has: auto_explain preloaded, bound values
    logged (PostgreSQL 16+) and a log this role may read. A user's server is never reconfigured."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT current_setting('server_version_num')::int, "
                           "current_setting('auto_explain.log_min_duration', true), "
                           "current_setting('auto_explain.log_format', true)").fetchone()
    assert row is not None
    if row[0] < 160_000:
        pytest.skip(f"auto_explain logs bound parameter values from PostgreSQL 16 (this server: {row[0]})")
    if row[1] is None:
        pytest.skip("this server does not preload auto_explain")
    if row[2] != "json" and os.environ.get(TEST_DSN_VARIABLE):  # pglab's own server must log JSON
        pytest.skip(f"this server's auto_explain logs plans as {row[2]}, which pglab does not read")
    if take_snapshot(dsn).log_position is None:
        pytest.skip("no server log this role can read")


def test_a_deep_offset_bound_on_the_server_is_seen_in_an_auto_explain_sample(shop: str) -> None:
    """psycopg 3 binds `%s` on the server: pg_stat_statements and pg_stat_activity keep only `$1`,
    and auto_explain's log of the slow calls is the one record of the offset."""
    _skip_without_auto_explain_samples(shop)
    query = "SELECT id, amount FROM orders ORDER BY created_at DESC LIMIT 20 OFFSET %s"

    def pages(first: int) -> list[Any]:
        with psycopg.connect(shop, autocommit=True) as app:
            # these tables are small enough for every page to be fast: this session logs every call,
            # as the server logs the slow ones (pglab's own: from 100 ms)
            app.execute("SET auto_explain.log_min_duration = 0")
            before = take_snapshot(shop)
            for page in range(10):
                app.execute(query, (first + page * 20,)).fetchall()
            return run_detectors(shop, before)[0]

    (found,) = of(pages(40_000), "offset_pagination")
    assert found.evidence["plan"] == "auto_explain sample" and "(plan: auto_explain sample)" in found.message
    assert int(found.evidence["plan_values"]["$1"]["value"]) >= 40_000, found.evidence["plan_values"]
    assert found.evidence["rows_skipped"] >= 40_000
    assert "offset_pagination" not in ids(pages(0))  # near miss: page 1 of the same code, logged too


def test_the_sort_message_counts_the_rows_the_query_returns(shop_plans: str) -> None:
    with psycopg.connect(shop_plans, autocommit=True) as conn:
        conn.execute("SET parallel_setup_cost = 0")
        conn.execute("SET parallel_tuple_cost = 0")
        conn.execute("SET min_parallel_table_scan_size = 0")
        found = of(check_statement(conn, "SELECT id FROM shipments WHERE carrier IS NULL ORDER BY created_at LIMIT 20",
                                   analyze=False), "sort_without_index")
    assert found and "to return 20 of them" in found[0].message, [f.message for f in found]
    assert found[0].evidence["rows_sorted"] >= 10_000  # the whole team's rows, not one worker's


# 2. no false N+1


def test_foreign_key_checks_of_a_batched_insert_are_no_n_plus_one(shop: str) -> None:
    def work() -> None:
        with psycopg.connect(shop) as app:
            for batch in range(3):
                app.execute("INSERT INTO shipments SELECT 100000 + %s * 1000 + i, i, 'new', NULL, now() "
                            "FROM generate_series(1, 1000) i", (batch,))
                app.commit()
            flush_stats(app)

    findings, _ = judged(shop, work, explain_top=False)
    assert "n_plus_one" not in ids(findings), [f.message for f in of(findings, "n_plus_one")]


def test_independent_lookups_beside_a_list_query_are_no_n_plus_one(shop: str) -> None:
    def lister() -> None:
        with psycopg.connect(shop, autocommit=True) as app:
            for _ in range(10):
                app.execute("SELECT id, amount FROM orders ORDER BY id DESC LIMIT 20").fetchall()

    def looker() -> None:
        with psycopg.connect(shop, autocommit=True) as app:
            for order in range(1, 201):
                app.execute("SELECT status FROM shipments WHERE order_id = %s", (order,)).fetchall()

    def work() -> None:
        threads = [threading.Thread(target=lister), threading.Thread(target=looker)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    findings, _ = judged(shop, work, explain_top=False)
    assert "n_plus_one" not in ids(findings), [f.message for f in of(findings, "n_plus_one")]


# 3. serializable_no_retry counts 40001 only


def test_read_only_serializable_transactions_rolled_back_are_no_failures(shop: str) -> None:
    def work() -> None:
        with psycopg.connect(shop) as app:
            app.isolation_level = psycopg.IsolationLevel.SERIALIZABLE
            for customer in range(1, 31):  # as a pool returns a connection: ROLLBACK
                app.execute("SELECT sum(amount) FROM orders WHERE customer_id = %s", (customer,)).fetchone()
                app.rollback()
            flush_stats(app)

    findings, notes = judged(shop, work, explain_top=False)
    assert not [note for note in notes if "server log" in note], notes  # the failures were counted: none
    assert "serializable_no_retry" not in ids(findings)


# 4. typed literals


def test_typed_literals_do_not_stop_plan_checks(shop: str) -> None:
    assert untyped_literals("now() - interval $2 AND d > date $3") == "now() - $2::interval AND d > $3::date"
    query = "SELECT id FROM shipments WHERE carrier = 'carrier 3' AND created_at > now() - interval '90 days'"

    def work() -> None:
        with psycopg.connect(shop, autocommit=True) as app:
            for _ in range(5):
                app.execute(query).fetchall()

    findings, notes = judged(shop, work)
    assert not [note for note in notes if "cannot EXPLAIN" in note], notes
    assert about(findings, "interval"), [f.message for f in findings]


# 5. write_amplification


def test_deleted_rows_are_no_index_writes(shop: str) -> None:
    def work() -> None:
        with psycopg.connect(shop, autocommit=True) as app:
            app.execute("DELETE FROM shipments WHERE id > 30000")
            flush_stats(app)

    unused_ok = {"write_amplification": {"min_unused_seconds": 0}}  # shipments_carrier_idx has no scan
    findings, _ = judged(shop, work, explain_top=False, thresholds=unused_ok)
    assert "write_amplification" not in ids(findings), [f.message for f in of(findings, "write_amplification")]

    def inserts() -> None:  # the same index, paid on every insert, is reported
        with psycopg.connect(shop, autocommit=True) as app:
            app.execute("INSERT INTO shipments SELECT 200000 + i, i, 'new', 'carrier 1', now() "
                        "FROM generate_series(1, 2000) i")
            flush_stats(app)

    findings, _ = judged(shop, inserts, explain_top=False, thresholds=unused_ok)
    (found,) = of(findings, "write_amplification")
    assert "shipments_carrier_idx" in found.evidence["redundant_indexes"]


# 6. hashed subplans run once


def test_a_hashed_subplan_is_not_multiplied_by_the_outer_rows(shop_plans: str) -> None:
    query = "SELECT count(*) FROM orders WHERE customer_id NOT IN (SELECT id FROM customers WHERE vip)"
    with psycopg.connect(shop_plans, autocommit=True) as conn:
        for analyze in (False, True):
            findings = check_statement(conn, query, analyze=analyze)
            assert "correlated_subquery" not in ids(findings)
            for found in of(findings, "missing_index"):
                if found.evidence["relation"] == "customers":  # the scan under the hashed SubPlan
                    assert found.evidence["rows_removed"] <= 20_000, (analyze, found.message)


# 7. parallel seq scans


def test_parallel_seq_scans_count_toward_the_missing_index_rule(shop: str) -> None:
    def lookups(table: str, times: int) -> Callable[[], None]:
        def work() -> None:
            with psycopg.connect(shop, autocommit=True) as app:
                for setting in ("parallel_setup_cost", "parallel_tuple_cost", "min_parallel_table_scan_size"):
                    app.execute(f"SET {setting} = 0")
                for i in range(times):
                    app.execute(f"SELECT id FROM {table} WHERE created_at = now() - %s * interval '1 day'",
                                (i,)).fetchall()
                flush_stats(app)
        return work

    findings, _ = judged(shop, lookups("shipments", 12), explain_top=False)
    (found,) = [f for f in of(findings, "missing_index") if f.evidence["subject"] == "table shipments"]
    assert found.evidence["seq_scan"] > found.evidence["full_scans"] >= 12  # several scans per parallel lookup
    with psycopg.connect(shop, autocommit=True) as conn:  # near miss: a 300-row table, read over and over
        conn.execute("CREATE TABLE carriers AS SELECT i AS id, now() AS created_at FROM generate_series(1, 300) i")
        conn.execute("ANALYZE carriers")
    findings, _ = judged(shop, lookups("carriers", 50), explain_top=False)
    assert not [f for f in of(findings, "missing_index") if f.evidence["subject"] == "table carriers"]


# 8. stale findings


@pytest.fixture
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    yield tmp_path


def test_a_fixed_problem_is_not_reported_again(shop: str, state_home: Path) -> None:
    def lookups() -> None:
        with psycopg.connect(shop, autocommit=True) as app:
            for day in range(12):
                app.execute("SELECT id FROM shipments WHERE created_at > now() - %s * interval '1 hour' "
                            "AND created_at < now() - %s * interval '1 hour'", (day + 1, day)).fetchall()
            flush_stats(app)

    lookups()
    first = json.loads(run_pglab("diagnose", "--dsn", shop, "--format", "json", "--no-explain").stdout)
    assert "table shipments" in {f["evidence"]["subject"] for f in first["findings"] if f["id"] == "missing_index"}
    assert first["summary"]["window"]["counters"] == "totals since the statistics began"
    with psycopg.connect(shop, autocommit=True) as conn:
        conn.execute("CREATE INDEX ON shipments (created_at)")
        conn.execute("ANALYZE shipments")
    lookups()
    second = json.loads(run_pglab("diagnose", "--dsn", shop, "--format", "json", "--no-explain").stdout)
    assert "missing_index" not in {f["id"] for f in second["findings"]}, second["findings"]
    assert second["summary"]["window"]["counters"] == "deltas between two snapshots"
    assert 0 < second["summary"]["window"]["seconds"] < 600
    assert list(state_home.glob("pglab/baseline-*.json"))


# 9. one statement, several entries


def test_entries_of_one_statement_are_grouped(shop: str) -> None:
    """psycopg sends 7 as int2 and 70000 as int4: one loop, two pg_stat_statements entries of 60 calls
    each, under the rule's 100."""
    def work() -> None:
        with psycopg.connect(shop) as app:
            for _request in range(5):
                for item in range(12):
                    for order in (7 + item, 70_000 + item):
                        app.execute("SELECT status FROM shipments WHERE order_id = %s", (order,)).fetchall()
                app.commit()
            flush_stats(app)

    before = take_snapshot(shop)
    work()
    result = diagnose_window(shop, before, explain_top=False)
    assert result.window is not None
    (grouped,) = [s for s in result.window.statements() if "FROM shipments WHERE order_id" in s["query"]]
    assert grouped["calls"] == 120 and len(grouped["queryids"]) == 2
    (found,) = of(result.findings, "n_plus_one")
    assert found.evidence["calls"] == 120
