"""`pglab diagnose` on workloads nobody wrote for it (issue 11), its plan rules: one test per way
they went wrong on a logistics database (`shop_workload`), each with the near miss that used to be
reported. The statistics rules are in `test_diagnose_workloads_stats.py`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from psycopg import ClientCursor
from shop_workload import about, judged
from test_detectors_support import flush_stats, ids, of

from pglab.lab.postgres.testdbs import TEST_DSN_VARIABLE
from pglab.lab.runtime.diagnose import run_detectors, take_snapshot
from pglab.lab.runtime.plans import check_statement
from pglab.lab.runtime.values import untyped_literals

pytest_plugins = ["shop_fixtures"]


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
