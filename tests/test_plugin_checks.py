"""The pytest plugin's statement counting, exercised the way a user meets it (see `plugin_inner`):
repeated statements (N+1, writes in a loop), statement budgets, the allow list and the marker's options.

Each check is shown failing on the anti-pattern and passing on the near-miss that looks like it
(the batched query, the statement below the threshold, the allow-listed case).
"""

from __future__ import annotations

import pytest
from plugin_inner import Run, inner_suite, marked_line

from pglab.lab.postgres.testdbs import TestServer

pytest_plugins = ["pytester"]


@pytest.fixture
def inner(pytester: pytest.Pytester, pg_server: TestServer, monkeypatch: pytest.MonkeyPatch) -> Run:
    return inner_suite(pytester, pg_server, monkeypatch)


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
