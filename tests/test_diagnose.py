"""`pglab diagnose` as a user runs it: findings with evidence in every format, the exit codes of
`pglab check`, proof that it writes nothing, and clear messages (with partial results) when the
server or the role cannot give it everything."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo
from test_detectors_support import pgss_dsn, run_block, seed_chat, statements  # noqa: F401

from cli import assert_one_line_error, run_pglab
from pglab.lab.core.fixes import fix_blocks
from pglab.lab.postgres.launcher import free_port
from pglab.lab.postgres.testdbs import unique_name
from pglab.lab.runtime.diagnose import run_detectors
from pglab.lab.runtime.stats import statement_kind


@pytest.fixture(autouse=True)
def own_state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test keeps pglab's baselines in a directory of its own, not in the user's state dir."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


def seed_naive(dsn: str) -> None:
    """The chat data, and a few naive lookups on an unindexed column."""
    (lookup,) = statements(fix_blocks("missing_index")["naive"])
    with psycopg.connect(dsn, autocommit=True) as conn:
        seed_chat(conn)
        for conversation_id in range(1, 21):
            conn.execute(lookup, {"conversation_id": conversation_id}).fetchall()
        conn.execute("SELECT pg_stat_force_next_flush()")


def table_digests(dsn: str) -> dict[str, str]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return {table: conn.execute(f"SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) "
                                    f"FROM {table} t").fetchone()[0]  # type: ignore[index]
                for table in ("users", "conversations", "conversation_members", "messages", "notifications")}


def test_findings_in_every_format_with_the_check_exit_codes(pg_dsn: str, tmp_path: Path) -> None:
    seed_naive(pg_dsn)
    result = run_pglab("diagnose", "--dsn", pg_dsn, "--format", "json")
    assert result.returncode == 1, result.stderr
    document = json.loads(result.stdout)
    found = {finding["id"]: finding for finding in document["findings"]}
    assert {"missing_index", "missing_fk_index"} <= set(found)
    assert found["missing_index"]["code"] == "PGL001" and found["missing_index"]["evidence"]["seq_scan"] >= 20
    assert found["missing_index"]["fix_hint"]
    assert document["summary"]["window"]["counters"] == "totals since the statistics began"
    fresh = {"XDG_STATE_HOME": str(tmp_path / "other")}  # no baseline: the same totals again
    sarif = json.loads(run_pglab("diagnose", "--dsn", pg_dsn, "--format", "sarif", env=fresh).stdout)
    assert {result["ruleId"] for result in sarif["runs"][0]["results"]} >= {"PGL001", "PGL024"}
    text = run_pglab("diagnose", "--dsn", pg_dsn, env={"XDG_STATE_HOME": str(tmp_path / "third")})
    assert text.returncode == 1 and "missing_index" in text.stdout and "seq_tup_read" in text.stdout


def test_a_clean_database_exits_zero(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        seed_chat(conn, users=20, conversations=20, messages=500)
    result = run_pglab("diagnose", "--dsn", pg_dsn, "--watch", "0.5")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No runtime anti-patterns found" in result.stdout or "Found 0 findings" in result.stdout


# Rows written to each table of this database, its catalogs included, except pg_statistic and its TOAST
# table, where the long statistics go (autovacuum's own ANALYZE writes them whenever it likes, as it
# did during CI runs: 77 rows into pg_toast_2619 once, and diagnose cannot run ANALYZE without the
# statement check below seeing it) and the catalogs shared by every database of the
# server (pg_database, pg_shdepend, ...), which other sessions write when they create or drop their
# databases: a CI run saw 6 such rows appear while diagnose ran.
TABLE_WRITES = ("SELECT s.relid::regclass::text, s.n_tup_ins + s.n_tup_upd + s.n_tup_del"
                " FROM pg_stat_all_tables s JOIN pg_class c ON c.oid = s.relid"
                " WHERE NOT c.relisshared AND s.relid NOT IN ('pg_catalog.pg_statistic'::regclass,"
                " (SELECT reltoastrelid FROM pg_class WHERE oid = 'pg_catalog.pg_statistic'::regclass))")


def table_writes(conn: psycopg.Connection[Any]) -> dict[str, int]:
    return {name: int(rows) for name, rows in conn.execute(TABLE_WRITES)}


def test_diagnose_writes_nothing(pgss_dsn: str) -> None:  # noqa: F811
    seed_naive(pgss_dsn)
    with psycopg.connect(pgss_dsn, autocommit=True) as conn:
        run_block(conn, "select_star_payload", "setup")
        conn.execute("VACUUM ANALYZE")  # so that autovacuum has nothing to write (pg_statistic) during the check
        conn.execute("SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database "
                     "WHERE datname = current_database()), 0)")
        conn.execute("SELECT pg_stat_force_next_flush()")
        writes_before = table_writes(conn)
    digests = table_digests(pgss_dsn)
    for args in (("--format", "json"), ("--watch", "1", "--format", "json")):
        assert run_pglab("diagnose", "--dsn", pgss_dsn, *args).returncode in (0, 1)  # 1 s may see nothing
    with psycopg.connect(pgss_dsn, autocommit=True) as conn:
        ran = [row[0] for row in conn.execute(
            "SELECT query FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database "
            "WHERE datname = current_database())")]
        writes_after = table_writes(conn)
    assert any("EXPLAIN" in query for query in ran), "diagnose planned the top statements"
    for query in ran:
        words = re.sub(r"/\*.*?\*/", " ", query, flags=re.DOTALL).split()
        first = words[0].upper() if words else ""
        assert statement_kind(query) not in ("insert", "update", "delete"), query
        assert first in ("SELECT", "WITH", "EXPLAIN", "SET", "BEGIN", "ROLLBACK", "SAVEPOINT", "RELEASE", "SHOW",
                         "PREPARE", "DEALLOCATE",
                         "COMMIT"), query
    assert table_digests(pgss_dsn) == digests
    assert {name: rows for name, rows in writes_after.items() if writes_before.get(name) != rows} == {}


def test_a_dsn_that_does_not_answer() -> None:
    result = run_pglab("diagnose", "--dsn", f"postgresql://postgres@127.0.0.1:{free_port()}/postgres")
    assert result.returncode == 2
    assert_one_line_error(result, "cannot connect to", "Connection refused")


def test_no_dsn_is_a_usage_error() -> None:
    result = run_pglab("diagnose", env={"PGLAB_DSN": ""})
    assert result.returncode == 2
    assert_one_line_error(result, "--dsn")


@pytest.fixture
def plain_role(pg_dsn: str) -> Iterator[str]:
    """A login role with no monitoring rights: a DSN for it on the test database."""
    name = unique_name("pglab_plain")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {name} LOGIN")
    try:
        yield make_conninfo(pg_dsn, user=name)
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {name}")
            conn.execute(f"DROP ROLE {name}")


def test_a_role_without_pg_read_all_stats_gets_partial_results(pg_dsn: str, plain_role: str) -> None:
    seed_naive(pg_dsn)
    with psycopg.connect(pg_dsn) as other:  # someone else's session, idle in transaction
        other.execute("SELECT 1")
        result = run_pglab("diagnose", "--dsn", plain_role, "--format", "json")
        other.rollback()
    document = json.loads(result.stdout)
    notes = [diagnostic["message"] for diagnostic in document["diagnostics"]]
    assert any("pg_read_all_stats" in note and "partial" in note for note in notes), notes
    assert "missing_fk_index" in {finding["id"] for finding in document["findings"]}  # the catalog is readable
    assert result.returncode == 1 and "Traceback" not in result.stderr


def test_a_server_without_pg_stat_statements(pg_dsn: str) -> None:
    seed_naive(pg_dsn)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("DROP EXTENSION IF EXISTS pg_stat_statements")
    result = run_pglab("diagnose", "--dsn", pg_dsn, "--format", "json")
    document = json.loads(result.stdout)
    assert any("pg_stat_statements" in d["message"] for d in document["diagnostics"])
    assert "missing_index" in {finding["id"] for finding in document["findings"]}  # the table statistics still speak
    assert result.returncode == 1


def test_detector_call_is_cheap_enough_to_repeat(pg_dsn: str) -> None:
    """The lab calls run_detectors every few seconds during a load run."""
    seed_naive(pg_dsn)
    started = time.perf_counter()
    for _ in range(5):
        run_detectors(pg_dsn)
    per_call = (time.perf_counter() - started) / 5
    print(f"run_detectors: {per_call * 1000:.0f} ms per call")
    assert per_call < 1.0

