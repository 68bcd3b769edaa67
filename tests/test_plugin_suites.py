"""The pytest plugin on suites the way teams write them (issue 18): budgets that hold whatever the
allow-list says, call chains instead of single lines, plans that see the test's own uncommitted
data, server-side capture on PostgreSQL 17/18, pytest-xdist, asyncpg, and a summary that shows
statement shapes. Each runs a real inner suite with pytester against the live test server."""

from __future__ import annotations

import json
import textwrap

import plugin_inner
import pytest
from plugin_inner import Run

from conftest import embedded_only
from pglab.lab.postgres.testdbs import TestServer

pytest_plugins = ["pytester"]


HEADER = '''
import asyncio

import psycopg
import pytest


def authors(dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE authors (id int PRIMARY KEY, name text NOT NULL)")
        conn.execute("INSERT INTO authors SELECT g, 'author ' || g FROM generate_series(1, 20) g")


def author_name(conn, author_id):
    return conn.execute("SELECT name FROM authors WHERE id = %s", (author_id,)).fetchone()  # helper
'''



def marked_line(body: str, marker: str) -> int:
    return plugin_inner.marked_line(body, marker, HEADER)


@pytest.fixture
def inner(pytester: pytest.Pytester, pg_server: TestServer, monkeypatch: pytest.MonkeyPatch) -> Run:
    return plugin_inner.inner_suite(pytester, pg_server, monkeypatch, HEADER)


def report_of(pytester: pytest.Pytester, name: str = "report.json") -> dict:
    return json.loads((pytester.path / name).read_text())


# 1. budgets -----------------------------------------------------------------------------------

BUDGET = '''
@pytest.mark.pglab(max_queries=3, allow=ALLOW)
def test_page(pglab_db):
    authors(pglab_db)
    with psycopg.connect(pglab_db) as conn:
        conn.execute("SELECT count(*) FROM authors").fetchone()  # count
        for author_id in range(1, 9):
            author_name(conn, author_id)  # loop
'''


def test_allowing_the_repeat_does_not_silence_the_budget(inner: Run) -> None:
    """The README's own example: the N+1 is accepted, the budget of 3 is not: 2 set-up statements,
    one count and 8 lookups are 11 statements, and the message lists each of them."""
    body = BUDGET.replace("ALLOW", '["n_plus_one"]')
    result = inner(body)
    result.assert_outcomes(failed=1)
    helper, loop, count = (marked_line(body, name) for name in ("helper", "loop", "count"))
    result.stdout.fnmatch_lines([
        f"query_budget [[]max_queries[]] at test_inner.py:{helper}",
        "  11 statements sent, budget 3; 4 distinct statements, most repeated 8x",
    ])
    # The failure section only: recent pytest repeats the whole message in its short summary.
    lines = result.stdout.lines
    failures = lines[:next((i for i, line in enumerate(lines) if "short test summary info" in line), len(lines))]
    breakdown = [line.strip() for line in failures if line.startswith("    ") and "x  " in line]
    assert sum(int(line.split("x", 1)[0]) for line in breakdown) == 11, breakdown
    assert any(line.startswith(f"8x  test_inner.py:{helper}") and f"test_inner.py:{loop}" in line
               for line in breakdown), breakdown
    assert any(line.startswith(f"1x  test_inner.py:{count}") for line in breakdown), breakdown
    assert "n_plus_one [" not in result.stdout.str()  # the repeat itself stays allowed


def test_the_budget_has_its_own_name_in_the_allow_list(inner: Run) -> None:
    inner(BUDGET.replace("ALLOW", '["n_plus_one", "query_budget"]')).assert_outcomes(passed=1)
    inner(BUDGET.replace("ALLOW", '["n_plus_one", "max_queries"]')).assert_outcomes(passed=1)
    result = inner(BUDGET.replace("ALLOW", '["query_budget"]'))
    result.assert_outcomes(failed=1)  # the N+1 still fails, the budget does not
    assert "pglab found 1 problem in this test:" in result.stdout.str()
    assert "n_plus_one [repeats]" in result.stdout.str() and "query_budget [" not in result.stdout.str()


# 2. call chains -------------------------------------------------------------------------------


def test_one_helper_called_from_six_lines_is_not_a_loop(inner: Run) -> None:
    body = '''
    def test_page_assembles_its_parts(pglab_db):
        authors(pglab_db)
        with psycopg.connect(pglab_db, autocommit=True) as conn:
            author_name(conn, 1)
            author_name(conn, 2)
            author_name(conn, 3)
            author_name(conn, 4)
            author_name(conn, 5)
            author_name(conn, 6)
    '''
    inner(body).assert_outcomes(passed=1)


def test_a_loop_over_a_helper_names_the_loop_and_the_helper(inner: Run, pytester: pytest.Pytester) -> None:
    body = '''
    def page(conn):
        names = []
        for author_id in range(1, 8):
            names.append(author_name(conn, author_id))  # loop
        return names


    def test_page(pglab_db):
        authors(pglab_db)
        with psycopg.connect(pglab_db) as conn:
            page(conn)  # caller
    '''
    result = inner(body, "--pglab-report", "report.json")
    result.assert_outcomes(failed=1)
    helper, loop, caller = (marked_line(body, name) for name in ("helper", "loop", "caller"))
    result.stdout.fnmatch_lines([
        f"PGL007 n_plus_one [[]repeats[]] at test_inner.py:{helper}",
        f"  the same SELECT ran 7 times from test_inner.py:{helper} (in author_name) <- test_inner.py:{loop} "
        f"(in page) <- test_inner.py:{caller} (in test_page) (threshold 5)*",
    ])
    finding = report_of(pytester)["tests"][0]["findings"][0]
    assert finding["evidence"]["call_chain"] == [f"test_inner.py:{line}" for line in (helper, loop, caller)]


# 3. plans that see the test's own data ------------------------------------------------------

ROLLED_BACK = '''
@pytest.fixture
def conn(pglab_db):
    """Each test in a transaction that is rolled back: nothing it writes is visible elsewhere."""
    with psycopg.connect(pglab_db) as conn:
        conn.execute("CREATE TABLE events (id bigint PRIMARY KEY, account_id int NOT NULL, kind text NOT NULL)")
        conn.execute("INSERT INTO events SELECT g, g % 500, 'click' FROM generate_series(1, 20000) g")
        if INDEXED:
            conn.execute("CREATE INDEX ON events (account_id)")
        yield conn
        conn.rollback()


def test_account_events(conn):
    rows = conn.execute("SELECT id, kind FROM events WHERE account_id = %s", (7,)).fetchall()  # scan
    assert len(rows) == 40
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
'''


def test_plans_are_read_where_the_tests_uncommitted_rows_are_visible(inner: Run) -> None:
    suite = "INDEXED = False\n" + ROLLED_BACK
    result = inner(suite)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        f"PGL001 missing_index [[]plans[]] at test_inner.py:{marked_line(suite, 'scan')}",
        "*plan: Seq Scan on events*Filter: (account_id = *",
    ])
    inner("INDEXED = True\n" + ROLLED_BACK).assert_outcomes(passed=1)


def test_a_plan_that_cannot_be_read_is_named_per_test(inner: Run, pytester: pytest.Pytester) -> None:
    body = '''
    @pytest.fixture
    def conn(pglab_db):
        with psycopg.connect(pglab_db) as conn:
            conn.execute("CREATE TABLE t (x int)")
            yield conn
            conn.rollback()


    def test_leaves_its_transaction_aborted(conn):
        conn.execute("SELECT x FROM t WHERE x = %s", (1,))
        with pytest.raises(psycopg.errors.DivisionByZero):
            conn.execute("SELECT 1 / 0")


    def test_fine(conn):
        conn.execute("SELECT x FROM t WHERE x = %s", (1,))
    '''
    result = inner(body, "--pglab-report", "report.json")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([
        "note: 1 test had statements pglab could not EXPLAIN:",
        "  test_inner.py::test_leaves_its_transaction_aborted: test_inner.py:*: plan not read: the test left its "
        "transaction aborted*",
    ])
    fine = report_of(pytester)["tests"][1]
    assert fine["plans_explained"] == 1 and fine["notes"] == []


# 4. server-side capture on PostgreSQL 17/18 -------------------------------------------------


@embedded_only("pg_stat_statements is preloaded on pglab's server (PostgreSQL 18), not on the 15 one here")
def test_server_capture_counts_savepoints_as_control_and_nothing_twice(inner: Run, pytester: pytest.Pytester
                                                                        ) -> None:
    (pytester.path / "worker.py").write_text(textwrap.dedent('''
        import sys
        import psycopg
        with psycopg.connect(sys.argv[1]) as conn:
            with conn.transaction(), conn.transaction():
                for number in range(int(sys.argv[2])):
                    conn.execute("SELECT %s::int * 2", (number,))
    '''), encoding="utf-8")
    body = f'''
    import subprocess
    import sys


    def other_process(dsn, count):
        subprocess.run([sys.executable, {str(pytester.path / "worker.py")!r}, dsn, str(count)], check=True)


    @pytest.mark.pglab(max_queries=3)
    def test_nested_transactions(pglab_db):
        with psycopg.connect(pglab_db) as conn:
            with conn.transaction():
                with conn.transaction():
                    conn.execute("SELECT 1")
                with conn.transaction():
                    conn.execute("SELECT 2")
            conn.execute("SELECT 3")


    @pytest.mark.pglab(max_queries=2, n_plus_one=0)
    def test_service_over_budget(pglab_db):
        other_process(pglab_db, 3)
    '''
    result = inner(body, "--pglab-server-capture", "--pglab-report", "report.json")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "query_budget [[]max_queries[]] at another process (pg_stat_statements)",
        "  3 statements sent, budget 2*",
    ])
    assert not [line for line in result.stdout.lines if line.rstrip().endswith(" at")], result.stdout.str()
    nested = report_of(pytester)["tests"][0]
    assert nested["statements"] == 3, nested


# 5. pytest-xdist --------------------------------------------------------------------------------


def test_xdist_workers_results_are_merged(inner: Run, pytester: pytest.Pytester) -> None:
    body = '''
    @pytest.mark.parametrize("number", range(4))
    def test_lookups(pglab_db, number):
        authors(pglab_db)
        with psycopg.connect(pglab_db) as conn:
            for author_id in range(1, 3 + number):
                author_name(conn, author_id)
    '''
    result = inner(body, "-n", "2", "--pglab-report", "report.json", subprocess=True)
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines([
        "4 tests checked, 22 statements captured, * plans read, 1 tests flagged",
        "  test_inner.py::test_lookups[[]3[]]: PGL007 n_plus_one test_inner.py:*",
    ])
    report = report_of(pytester)
    assert sorted(test["nodeid"] for test in report["tests"]) == [f"test_inner.py::test_lookups[{n}]" for n in range(4)]
    assert report["summary"] == {"tests": 4, "flagged": 1, "statements": 22}


# 6. asyncpg -------------------------------------------------------------------------------------


def test_asyncpg_statements_are_captured_with_their_call_chain(inner: Run, pytester: pytest.Pytester) -> None:
    body = '''
    import asyncpg
    from psycopg.conninfo import conninfo_to_dict


    def connect_args(dsn):
        """asyncpg takes URLs or keywords, not libpq's key=value strings."""
        params = conninfo_to_dict(dsn)
        return {"host": params.get("host"), "port": params.get("port"), "user": params.get("user"),
                "password": params.get("password"), "database": params["dbname"]}


    async def name_of(conn, author_id):
        return await conn.fetchval("SELECT name FROM authors WHERE id = $1", author_id)  # asyncpg helper


    async def page(dsn):
        conn = await asyncpg.connect(**connect_args(dsn))
        try:
            async with conn.transaction():
                return [await name_of(conn, author_id) for author_id in range(1, 7)]  # asyncpg loop
        finally:
            await conn.close()


    def test_asyncpg_loop(pglab_db):
        authors(pglab_db)
        assert len(asyncio.run(page(pglab_db))) == 6


    @pytest.mark.pglab(max_queries=5, n_plus_one=0)
    def test_asyncpg_pool(pglab_db):
        authors(pglab_db)

        async def main():
            async with asyncpg.create_pool(min_size=1, max_size=1, **connect_args(pglab_db)) as pool:
                async with pool.acquire() as conn:
                    await conn.execute("UPDATE authors SET name = 'x' WHERE id = $1", 1)
                await pool.fetchrow("SELECT name FROM authors WHERE id = $1", 1)
                await pool.executemany("UPDATE authors SET name = $1 WHERE id = $2", [("a", 1), ("b", 2)])

        asyncio.run(main())
    '''
    result = inner(body, "--pglab-report", "report.json", subprocess=True)
    result.assert_outcomes(failed=1, passed=1)
    helper, loop = (marked_line(body, name) for name in ("asyncpg helper", "asyncpg loop"))
    result.stdout.fnmatch_lines([
        f"PGL007 n_plus_one [[]repeats[]] at test_inner.py:{helper}",
        f"  the same SELECT ran 6 times from test_inner.py:{helper} (in name_of) <- test_inner.py:{loop} *",
        "  SQL: SELECT name FROM authors WHERE id = $1",
    ])
    tests = {test["nodeid"].split("::")[1]: test for test in report_of(pytester)["tests"]}
    assert tests["test_asyncpg_loop"]["transactions"] == 1
    assert tests["test_asyncpg_loop"]["plans_explained"] >= 1
    pool = tests["test_asyncpg_pool"]
    # 2 set-up statements (psycopg) + UPDATE, SELECT and one executemany; the pool's resets are not counted
    assert (pool["statements"], pool["selects"], pool["writes"]) == (5, 1, 3), pool
