"""The pytest plugin's checks, exercised the way a user meets them: a real inner test suite, run with
pytester against the live test server, whose statements go through psycopg to Postgres.

Each check is shown failing on the anti-pattern and passing on the near-miss that looks like it
(the batched query, the indexed table, the statement below the threshold, the allow-listed case).
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable

import pytest

from pglab.lab.postgres.testdbs import TestServer

pytest_plugins = ["pytester"]

Run = Callable[..., pytest.RunResult]

TABLES = '''
import asyncio
import time

import psycopg
import pytest


def authors_and_books(dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE authors (id int PRIMARY KEY, name text NOT NULL)")
        conn.execute("CREATE TABLE books (id int PRIMARY KEY, author_id int NOT NULL, title text NOT NULL)")
        conn.execute("INSERT INTO authors SELECT g, 'author ' || g FROM generate_series(1, 20) g")
        conn.execute("INSERT INTO books SELECT g, g % 20 + 1, 'book ' || g FROM generate_series(1, 40) g")
'''


@pytest.fixture
def inner(pytester: pytest.Pytester, pg_server: TestServer, monkeypatch: pytest.MonkeyPatch) -> Run:
    """Run an inner suite with the plugin on, its databases on this suite's server."""
    monkeypatch.setenv("PGLAB_TEST_DSN", pg_server.dsn)

    def run(body: str, *args: str) -> pytest.RunResult:
        (pytester.path / "test_inner.py").write_text(TABLES + textwrap.dedent(body), encoding="utf-8")
        return pytester.runpytest("--pglab", "-p", "no:cacheprovider", *args)

    return run


def marked_line(body: str, marker: str) -> int:
    lines = (TABLES + textwrap.dedent(body)).splitlines()
    return next(number for number, text in enumerate(lines, 1) if text.rstrip().endswith(f"# {marker}"))


N_PLUS_ONE = '''
def titles_with_authors(conn):
    books = conn.execute("SELECT id, author_id, title FROM books ORDER BY id LIMIT 10").fetchall()
    result = []
    for _, author_id, title in books:
        row = conn.execute("SELECT name FROM authors WHERE id = %s", (author_id,)).fetchone()  # loop
        result.append((title, row[0]))
    return result


def test_listing(pglab_db):
    authors_and_books(pglab_db)
    with psycopg.connect(pglab_db) as conn:
        assert len(titles_with_authors(conn)) == 10  # caller
'''

BATCHED = '''
def titles_with_authors(conn):
    books = conn.execute("SELECT id, author_id, title FROM books ORDER BY id LIMIT 10").fetchall()
    names = dict(conn.execute("SELECT id, name FROM authors WHERE id = ANY(%s)",
                              ([author_id for _, author_id, _ in books],)).fetchall())
    return [(title, names[author_id]) for _, author_id, title in books]


def test_listing(pglab_db):
    authors_and_books(pglab_db)
    with psycopg.connect(pglab_db) as conn:
        assert len(titles_with_authors(conn)) == 10
'''


def test_n_plus_one_fails_with_the_call_site_line(inner: Run) -> None:
    result = inner(N_PLUS_ONE)
    result.assert_outcomes(failed=1)
    line = marked_line(N_PLUS_ONE, "loop")
    result.stdout.fnmatch_lines([
        f"PGL007 n_plus_one [[]repeats[]] at test_inner.py:{line}",
        f"*the same SELECT ran 10 times from test_inner.py:{line} (in titles_with_authors) <- "
        f"test_inner.py:{marked_line(N_PLUS_ONE, 'caller')} (in test_listing) (threshold 5)*",
        "*SQL: SELECT name FROM authors WHERE id = %s",
        "*fix: fetch the related rows with a JOIN, or in one batch with WHERE id = ANY(%s)",
    ])


def test_the_same_code_batched_passes(inner: Run) -> None:
    inner(BATCHED).assert_outcomes(passed=1)


def test_threshold_is_configurable_globally_and_per_test(inner: Run) -> None:
    four = '''
    def lookups(dsn, count):
        with psycopg.connect(dsn) as conn:
            for author_id in range(1, count + 1):
                conn.execute("SELECT name FROM authors WHERE id = %s", (author_id,)).fetchone()


    def test_four_below_default(pglab_db):
        authors_and_books(pglab_db)
        lookups(pglab_db, 4)


    @pytest.mark.pglab(n_plus_one=3)
    def test_four_over_marker(pglab_db):
        authors_and_books(pglab_db)
        lookups(pglab_db, 4)


    @pytest.mark.pglab(n_plus_one=0)
    def test_check_off(pglab_db):
        authors_and_books(pglab_db)
        lookups(pglab_db, 12)
    '''
    result = inner(four)
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*test_four_over_marker*", "*ran 4 times*(threshold 3)*"])
    inner(four, "--pglab-n-plus-one", "2").assert_outcomes(passed=1, failed=2)


def test_different_call_sites_are_not_one_loop(inner: Run) -> None:
    """Six lookups of one shape from six lines (a page assembling its parts) is not N+1."""
    body = '''
    def test_six_places(pglab_db):
        authors_and_books(pglab_db)
        with psycopg.connect(pglab_db, autocommit=True) as conn:
            sql = "SELECT name FROM authors WHERE id = %s"
            conn.execute(sql, (1,))
            conn.execute(sql, (2,))
            conn.execute(sql, (3,))
            conn.execute(sql, (4,))
            conn.execute(sql, (5,))
            conn.execute(sql, (6,))
    '''
    inner(body).assert_outcomes(passed=1)


def test_writes_in_a_loop_name_their_own_entries(inner: Run) -> None:
    body = '''
    def test_fan_out(pglab_db):
        authors_and_books(pglab_db)
        with psycopg.connect(pglab_db) as conn:
            for book_id in range(1, 7):
                conn.execute("INSERT INTO books VALUES (%s + 100, 1, 'copy')", (book_id,))  # insert


    def test_batched_insert(pglab_db):
        authors_and_books(pglab_db)
        with psycopg.connect(pglab_db) as conn:
            conn.cursor().executemany("INSERT INTO books VALUES (%s + 100, 1, 'copy')", [(i,) for i in range(1, 7)])
    '''
    result = inner(body)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([f"PGL019 fanout_loop [[]repeats[]] at test_inner.py:{marked_line(body, 'insert')}"])


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


def test_allow_list(inner: Run) -> None:
    loop = '''
    def lookups(dsn):
        with psycopg.connect(dsn) as conn:
            for author_id in range(1, 8):
                conn.execute("SELECT name FROM authors WHERE id = %s", (author_id,)).fetchone()


    @pytest.mark.pglab(allow=["n_plus_one"])
    def test_by_id(pglab_db):
        authors_and_books(pglab_db)
        lookups(pglab_db)


    @pytest.mark.pglab(allow=["PGL007"])
    def test_by_code(pglab_db):
        authors_and_books(pglab_db)
        lookups(pglab_db)


    @pytest.mark.pglab(allow=["missing_index", "fanout_loop"])
    def test_other_ids_do_not_cover_it(pglab_db):
        authors_and_books(pglab_db)
        lookups(pglab_db)
    '''
    result = inner(loop)
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*test_other_ids_do_not_cover_it*"])
    fingerprint = next(line.split("allow=['")[-1].split("'")[0] for line in result.stdout.lines
                       if "this statement only" in line)
    inner(loop, "--pglab-allow", fingerprint).assert_outcomes(passed=3)


def test_savepoints_begin_commit_and_set_are_not_counted(inner: Run) -> None:
    body = '''
    @pytest.fixture
    def library(pglab_db):
        authors_and_books(pglab_db)  # fixtures run outside the capture: set-up is not counted
        return pglab_db


    @pytest.mark.pglab(max_queries=2)
    def test_two_statements_in_nested_transactions(library):
        with psycopg.connect(library) as conn:
            with conn.transaction():
                conn.execute("SET LOCAL statement_timeout = 1000")
                with conn.transaction():
                    with conn.transaction():
                        conn.execute("SELECT count(*) FROM books")
                conn.execute("UPDATE authors SET name = 'x' WHERE id = 1")


    @pytest.mark.pglab(max_queries=6)
    def test_counts_what_it_sees(pglab_db, pglab_queries):
        authors_and_books(pglab_db)
        with psycopg.connect(pglab_db) as conn:
            with conn.transaction(), conn.transaction():
                conn.execute("SELECT 1")
        control = [s.sql for s in pglab_queries.all if s.control]
        assert [sql.split()[0] for sql in control] == ["BEGIN", "SAVEPOINT", "RELEASE", "COMMIT"], control
        assert [s.sql for s in pglab_queries][-1] == "SELECT 1"
        assert len(pglab_queries) == 5  # 4 set-up statements + SELECT 1


    @pytest.mark.pglab(max_queries=2)
    def test_three_statements_over_budget(pglab_db):
        with psycopg.connect(pglab_db) as conn:
            with conn.transaction():
                conn.execute("SELECT 1")
                conn.execute("SELECT 2")
                conn.execute("SELECT 3")
    '''
    result = inner(body)
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*test_three_statements_over_budget*", "*3 statements sent, budget 2*"])


def test_budget_by_statement_class(inner: Run) -> None:
    body = '''
    @pytest.mark.pglab(max_writes=1, max_selects=3)
    def test_two_writes(pglab_db):
        authors_and_books(pglab_db)


    @pytest.mark.pglab(max_writes=2, max_selects=0)
    def test_two_writes_allowed(pglab_db):
        authors_and_books(pglab_db)
    '''
    result = inner(body)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*test_two_writes*", "*2 writes sent, budget 1*"])


def test_async_connections_and_pools_are_captured(inner: Run) -> None:
    body = '''
    from psycopg_pool import AsyncConnectionPool, ConnectionPool


    def test_async_loop(pglab_db):
        authors_and_books(pglab_db)

        async def main():
            async with await psycopg.AsyncConnection.connect(pglab_db) as conn:
                for author_id in range(1, 7):
                    await conn.execute("SELECT name FROM authors WHERE id = %s", (author_id,))  # async

        asyncio.run(main())


    def test_pool_loop(pglab_db):
        authors_and_books(pglab_db)
        with ConnectionPool(pglab_db, min_size=1, max_size=2) as pool:
            for author_id in range(1, 7):
                with pool.connection() as conn:
                    conn.execute("SELECT name FROM authors WHERE id = %s", (author_id,))  # pool


    def test_async_pool_loop(pglab_db):
        authors_and_books(pglab_db)

        async def main():
            async with AsyncConnectionPool(pglab_db, min_size=1, max_size=2) as pool:
                for author_id in range(1, 7):
                    async with pool.connection() as conn:
                        await conn.execute("SELECT name FROM authors WHERE id = %s", (author_id,))  # apool

        asyncio.run(main())
    '''
    result = inner(body)
    result.assert_outcomes(failed=3)
    for marker in ("async", "pool", "apool"):
        result.stdout.fnmatch_lines([f"*ran 6 times from test_inner.py:{marked_line(body, marker)} *"])


def test_every_way_of_sending_a_statement_is_captured(inner: Run) -> None:
    body = '''
    from psycopg import sql


    def test_sync_paths(pglab_db, pglab_queries):
        authors_and_books(pglab_db)
        with psycopg.connect(pglab_db, autocommit=True) as conn:
            list(conn.cursor().stream("SELECT id FROM authors WHERE id < %s", (3,)))
            with conn.cursor().copy("COPY authors (id, name) FROM STDIN") as copy:
                copy.write_row((100, "copied"))
            conn.cursor().executemany("UPDATE authors SET name = %s WHERE id = %s", [("a", 1), ("b", 2)])
            with conn.transaction(), conn.cursor(name="named") as named:
                named.execute("SELECT id FROM books").fetchall()
            psycopg.ClientCursor(conn).execute("SELECT %s::int", (7,))
            conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("books")))
        sent = [s.sql for s in pglab_queries.all[4:]]
        assert sent == [
            "SELECT id FROM authors WHERE id < %s", "COPY authors (id, name) FROM STDIN",
            "UPDATE authors SET name = %s WHERE id = %s", "BEGIN", "SELECT id FROM books",
            'FETCH FORWARD ALL FROM "named"', 'CLOSE "named"', "COMMIT", "SELECT %s::int",
            'SELECT count(*) FROM "books"'], sent
        assert pglab_queries.all[6].batch == 2
        assert [s.sql for s in pglab_queries.writes][-2:] == sent[1:3]


    def test_async_paths(pglab_db, pglab_queries):
        authors_and_books(pglab_db)

        async def main():
            async with await psycopg.AsyncConnection.connect(pglab_db) as conn:
                async with conn.cursor() as cur:
                    async for _ in cur.stream("SELECT id FROM authors WHERE id < %s", (3,)):
                        pass
                    await cur.executemany("UPDATE authors SET name = %s WHERE id = %s", [("a", 1), ("b", 2)])
                    async with cur.copy("COPY authors (id, name) FROM STDIN") as copy:
                        await copy.write_row((100, "copied"))
                async with conn.cursor(name="named") as named:
                    await named.execute("SELECT id FROM books")
                    await named.fetchall()

        asyncio.run(main())
        sent = [s.sql for s in pglab_queries.all[4:]]
        assert sent == [
            "BEGIN", "SELECT id FROM authors WHERE id < %s", "UPDATE authors SET name = %s WHERE id = %s",
            "COPY authors (id, name) FROM STDIN", "SELECT id FROM books", 'FETCH FORWARD ALL FROM "named"',
            'CLOSE "named"', "COMMIT"], sent
        assert [s.sql.split()[0] for s in pglab_queries.all if s.control] == ["BEGIN", "FETCH", "CLOSE", "COMMIT"]
    '''
    inner(body, "--pglab-plans", "off").assert_outcomes(passed=2)


def test_transaction_idle_across_non_database_work(inner: Run) -> None:
    body = '''
    def test_sleep_inside_transaction(pglab_db):
        with psycopg.connect(pglab_db) as conn:
            conn.execute("SELECT 1")  # first
            time.sleep(0.6)
            conn.execute("SELECT 2")  # second


    def test_sleep_between_transactions(pglab_db):
        with psycopg.connect(pglab_db, autocommit=True) as conn:
            conn.execute("SELECT 1")
            time.sleep(0.6)
            conn.execute("SELECT 2")


    @pytest.fixture
    def rolled_back(pglab_db):
        with psycopg.connect(pglab_db) as conn:
            conn.execute("SELECT 1")  # opens the transaction every test statement runs in
            yield conn
            conn.rollback()


    def test_fixture_transaction_is_not_the_codes(rolled_back):
        rolled_back.execute("SELECT 2")
        time.sleep(0.6)
        rolled_back.execute("SELECT 3")
        time.sleep(0.6)


    @pytest.mark.pglab(txn_idle_seconds=0, txn_max_seconds=0.2)
    def test_long_transaction(pglab_db):
        with psycopg.connect(pglab_db) as conn:
            with conn.transaction():  # long
                conn.execute("SELECT pg_sleep(0.3)")
    '''
    result = inner(body)
    result.assert_outcomes(passed=2, failed=2)
    first, second, long = (marked_line(body, name) for name in ("first", "second", "long"))
    result.stdout.fnmatch_lines([
        f"*streaming_txn [[]transactions[]] at test_inner.py:{first}",
        f"*sat idle for 0.6* s between test_inner.py:{first} and test_inner.py:{second} (limit 0.5 s)*",
    ])
    result.stdout.fnmatch_lines([f"*transaction opened at test_inner.py:{long} stayed open 0.3* s (limit 0.2 s*"])


def test_unknown_marker_option_is_a_usage_error(inner: Run) -> None:
    body = '''
    @pytest.mark.pglab(max_querys=3)
    def test_typo(pglab_db):
        pass
    '''
    result = inner(body)
    assert result.ret != 0
    result.stderr.fnmatch_lines(["ERROR: test_inner.py::test_typo: unknown pglab marker option(s) max_querys;*"])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()
