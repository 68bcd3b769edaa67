"""The pytest plugin's switch, fixtures, report and second source (pg_stat_statements), each run as
a real inner suite with pytester against the live test server."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import psycopg
import pytest

from conftest import embedded_only
from pglab.lab.postgres.testdbs import TestServer

pytest_plugins = ["pytester"]

LOOP = '''
import psycopg


def test_loop(pglab_db):
    with psycopg.connect(pglab_db) as conn:
        for number in range(8):
            conn.execute("SELECT %s::int + 1", (number,)).fetchone()
'''


@pytest.fixture
def suite(pytester: pytest.Pytester, pg_server: TestServer, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """An inner suite directory whose databases live on this suite's server."""
    monkeypatch.setenv("PGLAB_TEST_DSN", pg_server.dsn)
    return pytester


def write(suite: pytest.Pytester, name: str, body: str) -> None:
    (suite.path / name).write_text(textwrap.dedent(body), encoding="utf-8")


def test_inactive_unless_enabled(suite: pytest.Pytester) -> None:
    write(suite, "test_inner.py", LOOP + '''

def test_asks_for_the_fixture(pglab):
    pass
''')
    result = suite.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*the pglab plugin is not enabled: run pytest with --pglab or set `pglab = true`*"])
    assert "pglab found" not in result.stdout.str()


def test_enabled_from_the_ini_file(suite: pytest.Pytester) -> None:
    write(suite, "test_inner.py", LOOP)
    suite.makeini("[pytest]\npglab = true\npglab_plans = off\n")
    suite.runpytest("-p", "no:cacheprovider").assert_outcomes(failed=1)


def test_bad_settings_are_one_line_usage_errors(suite: pytest.Pytester) -> None:
    write(suite, "test_inner.py", LOOP)
    suite.makeini("[pytest]\npglab = true\npglab_n_plus_one = many\n")
    result = suite.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: pglab_n_plus_one: expected int, got 'many'"])
    write(suite, "test_inner.py", "import pytest\n\n@pytest.mark.pglab(plans='yes')\ndef test_x():\n    pass\n")
    result = suite.runpytest("-p", "no:cacheprovider", "-o", "pglab_n_plus_one=5")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: test_inner.py::test_x: pglab option plans must be bool, not 'yes'"])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_importing_the_plugin_loads_nothing_heavy() -> None:
    """Every pytest run in the environment imports the plugin: it must not drag psycopg, pglast
    or the checks in."""
    modules = ('psycopg', 'pglast', 'pglab.lab.plugin.capture', 'pglab.lab.plugin.querychecks')
    probe = f"import sys, pglab.lab.plugin.pytest_plugin; print(sorted(m for m in {modules!r} if m in sys.modules))"
    output = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]"


def test_template_is_seeded_once_and_cloned_per_test(suite: pytest.Pytester) -> None:
    write(suite, "conftest.py", '''
    import psycopg
    import pytest

    SEEDS = []


    @pytest.fixture(scope="session")
    def pglab_seed():
        def seed(dsn):
            SEEDS.append(dsn)
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("CREATE TABLE items (id int PRIMARY KEY)")
                conn.execute("INSERT INTO items SELECT generate_series(1, 3)")
        return seed
    ''')
    write(suite, "test_inner.py", '''
    import psycopg
    from conftest import SEEDS


    def test_first_writes(pglab_db):
        with psycopg.connect(pglab_db, autocommit=True) as conn:
            conn.execute("INSERT INTO items VALUES (4)")
            assert conn.execute("SELECT count(*) FROM items").fetchone() == (4,)


    def test_second_sees_only_the_seed(pglab_db):
        with psycopg.connect(pglab_db) as conn:
            assert conn.execute("SELECT count(*) FROM items").fetchone() == (3,)
        assert len(SEEDS) == 1
    ''')
    suite.runpytest("--pglab", "-p", "no:cacheprovider").assert_outcomes(passed=2)


def test_context_managers_and_the_query_log(suite: pytest.Pytester) -> None:
    write(suite, "test_inner.py", '''
    import psycopg
    import pytest

    CACHE = {}


    def lookup(conn, key):
        if key not in CACHE:
            CACHE[key] = conn.execute("SELECT %s::text || '!'", (key,)).fetchone()[0]
        return CACHE[key]


    def test_cache_hit_sends_nothing(pglab_db, pglab):
        with psycopg.connect(pglab_db) as conn:
            with pglab.assert_max_queries(1):
                lookup(conn, "a")
            with pglab.no_queries():
                assert lookup(conn, "a") == "a!"


    def test_cache_miss_is_caught(pglab_db, pglab):
        with psycopg.connect(pglab_db) as conn, pglab.no_queries():
            lookup(conn, "b")


    def test_budget_by_class(pglab_db, pglab):
        with psycopg.connect(pglab_db) as conn:
            conn.execute("CREATE TEMP TABLE t (x int)")
            with pglab.assert_max_queries(0, "write"):
                conn.execute("SELECT 1")
            with pytest.raises(AssertionError, match="at most 0 write statements, the block sent 2"):
                with pglab.assert_max_queries(0, "write"):
                    conn.execute("INSERT INTO t VALUES (1)")
                    conn.execute("UPDATE t SET x = 2")


    def test_query_log(pglab_db, pglab_queries):
        with psycopg.connect(pglab_db) as conn:
            conn.execute("SELECT 1")
            conn.execute("CREATE TEMP TABLE t (x int)")
            conn.execute("INSERT INTO t VALUES (%s)", (1,))
        assert [s.sql for s in pglab_queries.selects] == ["SELECT 1"]
        assert [s.sql for s in pglab_queries.writes] == ["INSERT INTO t VALUES (%s)"]
        assert len(pglab_queries) == 3 and len(pglab_queries.all) == 5  # + BEGIN, COMMIT
        assert pglab_queries.matching("insert into")[0].line == INSERT_LINE
        assert len(pglab_queries.transactions) == 1
    ''')
    source = (suite.path / "test_inner.py").read_text()
    insert_line = next(n for n, line in enumerate(source.splitlines(), 1) if "INSERT INTO t VALUES (%s)" in line)
    (suite.path / "test_inner.py").write_text(source + f"\nINSERT_LINE = {insert_line}\n")
    result = suite.runpytest("--pglab", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*test_cache_miss_is_caught*", "*expected at most 0 statements, the block sent 1:",
                                 "*test_inner.py:10  SELECT %s::text || '!'"])


def test_terminal_summary_and_json_report(suite: pytest.Pytester) -> None:
    write(suite, "test_inner.py", LOOP + '''

def test_clean(pglab_db):
    with psycopg.connect(pglab_db) as conn:
        conn.execute("SELECT 1")
''')
    result = suite.runpytest("--pglab", "-p", "no:cacheprovider", "--pglab-report", "out/pglab.json")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*= pglab =*",
        "2 tests checked, 9 statements captured, 2 plans read, 1 tests flagged",
        "  test_inner.py::test_loop: PGL007 n_plus_one test_inner.py:8",
        "most repeated statements (calls, tests, most in one test):",
        "       8    1     8  SELECT $1::int + $2",
    ])
    report = json.loads((suite.path / "out" / "pglab.json").read_text())
    assert report["summary"] == {"tests": 2, "flagged": 1, "statements": 9}
    loop, clean = report["tests"]
    assert (loop["nodeid"], loop["statements"], loop["selects"]) == ("test_inner.py::test_loop", 8, 8)
    finding = loop["findings"][0]
    where = (finding["id"], finding["code"], finding["path"], finding["line"])
    assert where == ("n_plus_one", "PGL007", "test_inner.py", 8)
    assert finding["evidence"]["count"] == 8 and finding["fix_hint"]
    assert clean["findings"] == [] and clean["statements"] == 1
    assert report["top_fingerprints"][0]["calls"] == 8
    assert report["top_fingerprints"][0]["sql"] == "SELECT $1::int + $2"  # the shape, not one call's text


def _has_statement_stats(server: TestServer) -> bool:
    with psycopg.connect(server.dsn) as conn:
        row = conn.execute("SHOW shared_preload_libraries").fetchone()
    return row is not None and "pg_stat_statements" in row[0]


@embedded_only("pg_stat_statements is preloaded on pglab's server, not on the PostgreSQL 15 one here")
def test_server_capture_sees_other_processes(suite: pytest.Pytester, pg_server: TestServer) -> None:
    assert _has_statement_stats(pg_server)
    worker = textwrap.dedent('''
        import sys
        import psycopg
        with psycopg.connect(sys.argv[1], autocommit=True) as conn:
            for number in range(int(sys.argv[2])):
                conn.execute("SELECT %s::int * 2", (number,))
    ''')
    (suite.path / "worker.py").write_text(worker, encoding="utf-8")
    write(suite, "test_inner.py", f'''
    import subprocess
    import sys

    import psycopg


    def other_process(dsn, count):
        subprocess.run([sys.executable, {str(suite.path / "worker.py")!r}, dsn, str(count)], check=True)


    def test_service_loops(pglab_db):
        other_process(pglab_db, 7)


    def test_service_below_threshold(pglab_db):
        other_process(pglab_db, 3)


    def test_own_statements_are_not_counted_twice(pglab_db, pglab_queries):
        with psycopg.connect(pglab_db, autocommit=True) as conn:
            for number in range(3):
                conn.execute("SELECT %s::int * 2", (number,))
        other_process(pglab_db, 3)
    ''')
    result = suite.runpytest("--pglab", "--pglab-server-capture", "-p", "no:cacheprovider",
                             "--pglab-report", "report.json")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines([
        "*test_service_loops*",
        "*the same SELECT ran 7 times from another process (pg_stat_statements) (threshold 5)*",
    ])
    report = {t["nodeid"].split("::")[1]: t for t in json.loads((suite.path / "report.json").read_text())["tests"]}
    assert report["test_service_below_threshold"]["statements"] == 3
    # 3 from the test itself plus 3 from the worker: 6 calls, not the 9 a naive sum of both sources gives
    assert report["test_own_statements_are_not_counted_twice"]["statements"] == 6
