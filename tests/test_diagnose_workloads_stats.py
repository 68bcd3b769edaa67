"""`pglab diagnose` on workloads nobody wrote for it (issue 11), its statistics rules and report:
one test per way they went wrong on a logistics database (`shop_workload`), each with the near miss
that used to be reported. The plan rules are in `test_diagnose_workloads.py`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from shop_workload import judged
from test_detectors_support import flush_stats, ids, of

from cli import run_pglab
from pglab.lab.runtime.diagnose import diagnose_window, take_snapshot

pytest_plugins = ["shop_fixtures"]


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
