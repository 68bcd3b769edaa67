"""The pytest plugin's capture, exercised the way a user meets it (see `plugin_inner`): every way
psycopg sends a statement (async, pools, streams, COPY, named cursors) is seen, and so is a
transaction left idle across non-database work.
"""

from __future__ import annotations

import pytest
from plugin_inner import Run, inner_suite, marked_line

from pglab.lab.postgres.testdbs import TestServer

pytest_plugins = ["pytester"]


@pytest.fixture
def inner(pytester: pytest.Pytester, pg_server: TestServer, monkeypatch: pytest.MonkeyPatch) -> Run:
    return inner_suite(pytester, pg_server, monkeypatch)


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
