"""`pglab advise-index` on a live server: candidates come from the plan, each is built for real in a
transaction that is rolled back and measured with EXPLAIN ANALYZE, and only those that halve the
cost are kept; nothing is left behind."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest
from test_detectors_support import pgss_dsn, seed_chat, statements  # noqa: F401

from cli import assert_one_line_error, run_pglab
from pglab.lab.core.fixes import fix_blocks
from pglab.lab.runtime.advise import advise, candidates
from pglab.lab.runtime.plans import explain


@pytest.fixture
def chat_dsn(pg_dsn: str) -> str:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        seed_chat(conn, users=12_000)
    return pg_dsn


def schema_state(dsn: str) -> tuple[Any, ...]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        indexes = conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1").fetchall()
        extensions = conn.execute("SELECT extname FROM pg_extension ORDER BY 1").fetchall()
    return tuple(indexes), tuple(extensions)


def test_keeps_the_index_that_halves_the_cost_and_leaves_nothing_behind(chat_dsn: str) -> None:
    before = schema_state(chat_dsn)
    sql = "SELECT id, body FROM messages WHERE conversation_id = 7 ORDER BY created_at DESC LIMIT 20"
    results = advise(chat_dsn, sql, allow_ddl=True)
    kept = [r for r in results if r.kept]
    assert kept, [(r.definition, r.saving, r.used) for r in results]
    best = max(kept, key=lambda r: r.saving)
    assert best.definition == "CREATE INDEX ON messages USING btree (conversation_id, created_at)"
    assert best.cost_after <= 0.5 * best.cost_before and best.ms_after is not None and best.ms_before is not None
    assert all(r.saving >= 0.5 and r.used for r in kept)
    assert schema_state(chat_dsn) == before


def test_like_search_gets_a_trigram_index(chat_dsn: str) -> None:
    before = schema_state(chat_dsn)
    results = advise(chat_dsn, "SELECT id FROM messages WHERE body ILIKE '%needle%'", allow_ddl=True)
    assert [r.definition for r in results if r.kept] == ["CREATE INDEX ON messages USING gin (body gin_trgm_ops)"]
    assert schema_state(chat_dsn) == before  # the pg_trgm extension was rolled back with the index


def test_expression_candidates_for_wrapped_columns(chat_dsn: str) -> None:
    results = advise(chat_dsn, "SELECT id FROM users WHERE lower(email) = 'user77@example.com'", allow_ddl=True)
    assert [r.definition for r in results if r.kept] == ["CREATE INDEX ON users USING btree ((lower(email)))"]


def test_range_column_goes_after_the_equality_columns(chat_dsn: str) -> None:
    with psycopg.connect(chat_dsn, autocommit=True) as conn:
        plan = explain(conn, "SELECT id FROM messages WHERE conversation_id = 3 AND created_at > now() - "
                             "interval '1 hour' AND user_id = 4")
    shapes = [candidate.columns for candidate in candidates(plan)]
    assert shapes[0] == ("conversation_id", "user_id", "created_at")


def test_nothing_is_kept_when_nothing_would_help(chat_dsn: str) -> None:
    with psycopg.connect(chat_dsn, autocommit=True) as conn:
        conn.execute("CREATE INDEX ON messages (conversation_id, created_at)")
    served = "SELECT id, body FROM messages WHERE conversation_id = 7 ORDER BY created_at DESC LIMIT 20"
    assert not [r for r in advise(chat_dsn, served, allow_ddl=True) if r.kept]
    unselective = "SELECT count(*) FROM messages WHERE tokens >= 1"  # keeps nearly every row
    assert not [r for r in advise(chat_dsn, unselective, allow_ddl=True) if r.kept]
    result = run_pglab("advise-index", "--dsn", chat_dsn, "--allow-ddl", served)
    assert result.returncode == 0, result.stdout + result.stderr


def test_command_line_json_and_exit_codes(chat_dsn: str) -> None:
    sql = "SELECT id, body FROM messages WHERE conversation_id = 7 ORDER BY created_at DESC LIMIT 20"
    result = run_pglab("advise-index", "--dsn", chat_dsn, "--allow-ddl", "--format", "json", sql)
    assert result.returncode == 1, result.stderr
    (report,) = json.loads(result.stdout)
    assert report["statement"] == sql and any(c["kept"] and c["saving"] >= 0.5 for c in report["candidates"])


def test_ddl_needs_permission_on_a_server_pglab_does_not_own(chat_dsn: str) -> None:
    result = run_pglab("advise-index", "--dsn", chat_dsn, "SELECT id FROM messages WHERE conversation_id = 7",
                       env={"PGLAB_STATE_DIR": "/nonexistent-pglab-state"})
    assert result.returncode == 2
    assert_one_line_error(result, "hypopg", "--allow-ddl")


def test_top_statements_from_pg_stat_statements(pgss_dsn: str) -> None:  # noqa: F811
    (lookup,) = statements(fix_blocks("missing_index")["naive"])
    with psycopg.connect(pgss_dsn, autocommit=True) as conn:
        seed_chat(conn)
        for conversation_id in range(1, 11):
            conn.execute(lookup, {"conversation_id": conversation_id}).fetchall()
    result = run_pglab("advise-index", "--dsn", pgss_dsn, "--allow-ddl", "--format", "json", "--top", "3")
    assert result.returncode == 1, result.stderr
    reports = {report["statement"]: report for report in json.loads(result.stdout)}
    (report,) = [r for statement, r in reports.items() if "conversation_id = $1" in statement]
    kept = [c for c in report["candidates"] if c["kept"]]
    assert kept and kept[0]["ms_before"] is None  # a generic plan: cost only, nothing was run


def hypopg_available(dsn: str) -> bool:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return bool(conn.execute("SELECT count(*) FROM pg_available_extensions WHERE name = 'hypopg'").fetchone()[0])  # type: ignore[index]


def test_with_hypopg_no_ddl_is_needed(chat_dsn: str) -> None:
    if not hypopg_available(chat_dsn):
        pytest.skip("hypopg is not installed on this server")
    with psycopg.connect(chat_dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION hypopg")
    before = schema_state(chat_dsn)
    sql = "SELECT id, body FROM messages WHERE conversation_id = 7 ORDER BY created_at DESC LIMIT 20"
    results = advise(chat_dsn, sql)  # no allow_ddl: hypothetical indexes only
    kept = [r for r in results if r.kept]
    assert kept and all(r.method == "hypopg" and r.ms_after is None for r in results)
    assert max(kept, key=lambda r: r.saving).definition.endswith("(conversation_id, created_at)")
    assert schema_state(chat_dsn) == before
