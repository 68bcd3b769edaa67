"""The plugin's plan checks on async connections and on statements with side effects (issue 18,
point 3): a test that holds its rows in a rolled-back transaction on a psycopg AsyncConnection gets
its plans read on that connection; one on asyncpg, which pglab cannot drive after the test, is told
per test that its plans could not see those rows; and no plan check ever executes a statement
whose functions have effects a rollback does not undo. Each runs a real inner suite with pytester
against the live test server."""

from __future__ import annotations

import json
from typing import Any

# Imported here so that pglast is loaded before any in-process inner run: pytester drops the modules
# a run imported, and a re-imported pglast.ast no longer matches the nodes its C parser (which
# cannot be re-imported) builds, so every statement would look unsafe to EXPLAIN ANALYZE.
import plugin_inner
import pytest
from plugin_inner import Run

import pglab.lab.runtime.plans  # noqa: F401
from pglab.lab.postgres.testdbs import TestServer

pytest_plugins = ["pytester"]


HEADER = '''
import asyncio

import psycopg
import pytest

FILL = "INSERT INTO events SELECT g, g % 500, 'click' FROM generate_series(1, 20000) g"


def events_table(dsn):
    """Committed: every connection sees the (empty) table; only the fixture's rows are private."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE events (id bigint PRIMARY KEY, account_id int NOT NULL, kind text NOT NULL)")
        if INDEXED:
            conn.execute("CREATE INDEX ON events (account_id)")


@pytest.fixture
def loop():
    """The event loop of an async fixture that outlives one test call."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()
'''



def marked_line(body: str, marker: str) -> int:
    return plugin_inner.marked_line(body, marker, HEADER)


@pytest.fixture
def inner(pytester: pytest.Pytester, pg_server: TestServer, monkeypatch: pytest.MonkeyPatch) -> Run:
    return plugin_inner.inner_suite(pytester, pg_server, monkeypatch, HEADER, "--pglab-report", "report.json")


def report_tests(pytester: pytest.Pytester) -> dict[str, dict[str, Any]]:
    report = json.loads((pytester.path / "report.json").read_text(encoding="utf-8"))
    return {test["nodeid"].split("::")[-1]: test for test in report["tests"]}


ASYNC_PSYCOPG = '''
@pytest.fixture
def conn(pglab_db, loop):
    """Each test in a transaction on an AsyncConnection that is rolled back afterwards."""
    events_table(pglab_db)
    conn = loop.run_until_complete(psycopg.AsyncConnection.connect(pglab_db))
    loop.run_until_complete(conn.execute(FILL))
    yield loop, conn

    async def after():
        # the plan was read inside a savepoint of this transaction: its rows are all still here
        assert (await (await conn.execute("SELECT count(*) FROM events")).fetchone())[0] == 20000
        await conn.rollback()
        await conn.close()

    loop.run_until_complete(after())


def test_account_events(conn):
    loop, conn = conn

    async def query():
        cursor = await conn.execute("SELECT id FROM events WHERE account_id = %s", (7,))  # scan
        return await cursor.fetchall()

    assert len(loop.run_until_complete(query())) == 40
'''


def test_async_psycopg_plans_are_read_on_the_tests_own_transaction(inner: Run, pytester: pytest.Pytester) -> None:
    suite = "INDEXED = False\n" + ASYNC_PSYCOPG
    result = inner(suite)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        f"PGL001 missing_index [[]plans[]] at test_inner.py:{marked_line(suite, 'scan')}",
        "*plan: Seq Scan on events*actual rows=40*removed by filter=19960*",
    ])
    inner("INDEXED = True\n" + ASYNC_PSYCOPG).assert_outcomes(passed=1)
    indexed = report_tests(pytester)["test_account_events"]
    assert (indexed["plans_explained"], indexed["notes"], indexed["caveats"]) == (1, [], [])


ASYNCPG = '''
import asyncpg
from psycopg.conninfo import conninfo_to_dict


def connect(dsn):
    params = conninfo_to_dict(dsn)
    return asyncpg.connect(host=params.get("host"), port=params.get("port"), user=params.get("user"),
                           password=params.get("password"), database=params["dbname"])


@pytest.fixture
def conn(pglab_db, loop):
    """Each test in a transaction on an asyncpg connection that is rolled back afterwards."""
    events_table(pglab_db)
    conn = loop.run_until_complete(connect(pglab_db))
    transaction = conn.transaction()
    loop.run_until_complete(transaction.start())
    loop.run_until_complete(conn.execute(FILL))
    yield loop, conn
    loop.run_until_complete(transaction.rollback())
    loop.run_until_complete(conn.close())


def test_account_events(conn):
    loop, conn = conn
    rows = loop.run_until_complete(conn.fetch("SELECT id FROM events WHERE account_id = $1", 7))  # blind
    assert len(rows) == 40


def test_committed_events(pglab_db, loop):
    events_table(pglab_db)

    async def main():
        conn = await connect(pglab_db)
        try:
            await conn.execute(FILL)
            return await conn.fetch("SELECT id FROM events WHERE kind = $1 AND id < 10", "click")
        finally:
            await conn.close()

    assert len(loop.run_until_complete(main())) == 9
'''


def test_asyncpg_in_a_transaction_is_told_its_plans_cannot_see_its_rows(inner: Run, pytester: pytest.Pytester
                                                                        ) -> None:
    suite = "INDEXED = False\n" + ASYNCPG
    result = inner(suite, subprocess=True)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([
        "2 tests checked, 4 statements captured, 3 plans read, 0 tests flagged",
        "note: 1 test had plans read with a caveat:",
        f"  test_inner.py::test_account_events: test_inner.py:{marked_line(suite, 'blind')}: planned on another "
        "connection: this test's uncommitted rows are not visible to the plan*",
    ])
    tests = report_tests(pytester)
    assert len(tests["test_account_events"]["caveats"]) == 1
    assert "asyncpg" in tests["test_account_events"]["caveats"][0]
    # committed rows are visible to any connection: nothing to say
    assert (tests["test_committed_events"]["plans_explained"], tests["test_committed_events"]["caveats"]) == (2, [])


SIDE_EFFECTS = '''
INDEXED = False


@pytest.fixture
def conn(pglab_db):
    """A rolled-back transaction with a temporary sequence, which nextval() advances even when read
    only and which no rollback puts back."""
    with psycopg.connect(pglab_db) as conn:
        conn.execute("CREATE TEMP SEQUENCE tick")
        yield conn
        assert conn.execute("SELECT last_value FROM tick").fetchone()[0] == 1  # the test's one call
        conn.rollback()


def test_sync(conn):
    assert conn.execute("SELECT nextval('tick')").fetchone()[0] == 1  # sync nextval


@pytest.fixture
def aconn(pglab_db, loop):
    conn = loop.run_until_complete(psycopg.AsyncConnection.connect(pglab_db))
    loop.run_until_complete(conn.execute("CREATE TEMP SEQUENCE tick"))
    yield loop, conn

    async def after():
        assert (await (await conn.execute("SELECT last_value FROM tick")).fetchone())[0] == 1
        await conn.close()

    loop.run_until_complete(after())


def test_async(aconn):
    loop, conn = aconn

    async def tick():
        return await (await conn.execute("SELECT nextval('tick')")).fetchone()  # async nextval

    assert loop.run_until_complete(tick())[0] == 1
'''


def test_plan_checks_never_execute_a_statement_with_side_effects(inner: Run, pytester: pytest.Pytester) -> None:
    result = inner(SIDE_EFFECTS)
    result.assert_outcomes(passed=2)  # a second nextval would fail the fixtures' teardown
    result.stdout.fnmatch_lines([
        "note: 2 tests had plans read with a caveat:",
        f"  test_inner.py::test_sync: test_inner.py:{marked_line(SIDE_EFFECTS, 'sync nextval')}: plain EXPLAIN, "
        "not ANALYZE: *",
        f"  test_inner.py::test_async: test_inner.py:{marked_line(SIDE_EFFECTS, 'async nextval')}: plain EXPLAIN, "
        "not ANALYZE: *",
    ])
    for test in report_tests(pytester).values():
        assert test["plans_explained"] == 1 and test["notes"] == []
        assert test["caveats"][0].endswith("SELECT nextval('tick')")
