"""The pytest plugin's plan checks, exercised the way a user meets them (see `plugin_inner`): a
sequential scan of a large unindexed table fails and passes once indexed, statistics can be scaled,
and a plan is never read by waiting for a lock the test still holds. Below them, the catalog facts
every plan check reads: which columns lead an index.
"""

from __future__ import annotations

import json

import psycopg
import pytest
from plugin_inner import Run, inner_suite, marked_line

from pglab.lab.plugin.planchecks import read_catalog
from pglab.lab.postgres.testdbs import TestServer
from pglab.lab.runtime.diagnose import take_snapshot
from pglab.lab.runtime.plans import catalog_facts, explain

pytest_plugins = ["pytester"]


@pytest.fixture
def inner(pytester: pytest.Pytester, pg_server: TestServer, monkeypatch: pytest.MonkeyPatch) -> Run:
    return inner_suite(pytester, pg_server, monkeypatch)


SEQ_SCAN = '''
def events(dsn, rows, index):
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE events (id bigint PRIMARY KEY, account_id int NOT NULL, kind text NOT NULL)")
        conn.execute("INSERT INTO events SELECT g, g %% 500, 'click' FROM generate_series(1, %s) g", (rows,))
        if index:
            conn.execute("CREATE INDEX events_account_id ON events (account_id)")


def account_events(dsn):
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT id, kind FROM events WHERE account_id = %s", (7,)).fetchall()  # scan


def test_unindexed(pglab_db):
    events(pglab_db, ROWS, index=False)
    assert len(account_events(pglab_db)) == ROWS // 500


def test_indexed(pglab_db):
    events(pglab_db, ROWS, index=True)
    assert len(account_events(pglab_db)) == ROWS // 500
'''


def test_seq_scan_of_a_large_unindexed_table_fails_and_passes_once_indexed(inner: Run) -> None:
    suite = "ROWS = 20_000\n" + SEQ_SCAN
    result = inner(suite)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*test_unindexed*",
        f"PGL001 missing_index [[]plans[]] at test_inner.py:{marked_line(suite, 'scan')}",
        "*SQL: SELECT id, kind FROM events WHERE account_id = %s",
        "*plan: Seq Scan on events*Filter: (account_id = *",
        "*fix: CREATE INDEX*",
    ])
    assert "test_indexed" not in "\n".join(line for line in result.stdout.lines if line.startswith("FAILED"))


def test_small_table_passes_unless_statistics_are_scaled(inner: Run) -> None:
    small = "ROWS = 1_000\n" + SEQ_SCAN
    inner(small).assert_outcomes(passed=2)
    scaled = inner(small, "--pglab-plan-scale", "1000")
    scaled.assert_outcomes(passed=1, failed=1)
    scaled.stdout.fnmatch_lines(["*test_unindexed*", "*Seq Scan on events*(estimated)*"])


def test_plan_checks_can_be_turned_off(inner: Run) -> None:
    inner("ROWS = 20_000\n" + SEQ_SCAN, "--pglab-plans", "off").assert_outcomes(passed=2)


def test_plan_checks_do_not_wait_for_locks_the_test_still_holds(inner: Run, pytester: pytest.Pytester) -> None:
    body = '''
    HELD = []


    def test_leaves_a_lock(pglab_db):
        authors_and_books(pglab_db)
        conn = psycopg.connect(pglab_db)
        conn.execute("SELECT name FROM authors WHERE id = %s", (1,)).fetchone()
        conn.execute("ALTER TABLE authors ADD COLUMN extra int")  # ACCESS EXCLUSIVE until it ends
        HELD.append(conn)  # still open, transaction and all, when the test's call returns
    '''
    result = inner(body, "--pglab-report", "report.json")
    result.assert_outcomes(passed=1)
    notes = json.loads((pytester.path / "report.json").read_text())["tests"][0]["notes"]
    assert any("lock timeout" in note for note in notes), notes
    result.stdout.fnmatch_lines(["note: 1 test had statements pglab could not EXPLAIN:",
                                 "  test_inner.py::test_leaves_a_lock: *lock timeout*"])


def test_a_column_after_an_expression_key_does_not_lead_the_index(pg_dsn: str) -> None:
    """An index on (lower(email), id) is led by an expression: `id` is its second key and an index
    on it does not serve `WHERE id = ...` alone. The catalog queries of the plugin, of statistics
    snapshots and of `check_statement` keep the expression's slot (None) instead of dropping it."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE people (id int NOT NULL, email text NOT NULL, city text)")
        conn.execute("CREATE INDEX people_email_id ON people (lower(email), id)")
        conn.execute("CREATE INDEX people_city ON people (city)")
        assert read_catalog(conn, 1.0).indexed_columns["people"] == frozenset({"city"})
        assert catalog_facts(conn, explain(conn, "SELECT id FROM people", analyze=False))[1] == {
            "people": frozenset({"city"})}
    columns = {index["name"]: index["columns"] for index in take_snapshot(pg_dsn).indexes}
    assert columns["people_email_id"] == [None, "id"]
