"""`pglab advise-index` on a live server: candidates come from the plan, each is built for real in a
transaction that is rolled back and measured with EXPLAIN ANALYZE, and only those that halve the
cost are kept; nothing is left behind. And what it must never do (issue 9): execute a statement
whose functions have effects a rollback does not undo (a sequence, pg_stat_statements_reset(), a
function that cancels another session, itself, through a function it calls or by SQL it builds at
run time), execute what pg_stat_statements recorded, suggest an index
on a system catalog, suggest DDL that fails as written, or give up on a run because one statement
waits on a lock."""

from __future__ import annotations

import json
import threading
import time
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
    advice = advise(chat_dsn, sql, allow_ddl=True)
    results = advice.candidates
    kept = [r for r in results if r.kept]
    assert kept, [(r.definition, r.saving, r.used) for r in results]
    assert advice.analyzed and not advice.notes  # named, functions all side-effect free: measured for real
    best = max(kept, key=lambda r: r.saving)
    assert best.definition == "CREATE INDEX CONCURRENTLY ON public.messages USING btree (conversation_id, created_at)"
    assert best.cost_after <= 0.5 * best.cost_before and best.ms_after is not None and best.ms_before is not None
    assert all(r.saving >= 0.5 and r.used for r in kept)
    assert schema_state(chat_dsn) == before


def test_like_search_gets_a_trigram_index(chat_dsn: str) -> None:
    before = schema_state(chat_dsn)
    results = advise(chat_dsn, "SELECT id FROM messages WHERE body ILIKE '%needle%'", allow_ddl=True).candidates
    assert [r.definition for r in results if r.kept] == [
        "CREATE EXTENSION IF NOT EXISTS pg_trgm; CREATE INDEX CONCURRENTLY ON public.messages USING gin "
        "(body gin_trgm_ops)"]  # pg_trgm is not installed: the advice installs it first
    assert schema_state(chat_dsn) == before  # the pg_trgm extension was rolled back with the index
    run_as_written(chat_dsn, results[0].definition)
    with psycopg.connect(chat_dsn, autocommit=True) as conn:  # now pg_trgm is there: no CREATE EXTENSION
        (schema,) = conn.execute("SELECT extnamespace::regnamespace::text FROM pg_extension "
                                 "WHERE extname = 'pg_trgm'").fetchone()  # type: ignore[misc]
        conn.execute("DROP INDEX messages_body_idx")
    again = advise(chat_dsn, "SELECT id FROM messages WHERE body ILIKE '%needle%'", allow_ddl=True).candidates
    assert [r.definition for r in again if r.kept] == [
        f"CREATE INDEX CONCURRENTLY ON public.messages USING gin (body {schema}.gin_trgm_ops)"]


def run_as_written(dsn: str, definition: str) -> None:
    """Run suggested DDL the way a user pastes it into psql: one statement at a time, autocommit."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in definition.split("; "):
            conn.execute(statement)


def test_expression_candidates_for_wrapped_columns(chat_dsn: str) -> None:
    results = advise(chat_dsn, "SELECT id FROM users WHERE lower(email) = 'user77@example.com'", allow_ddl=True)
    assert [r.definition for r in results.candidates if r.kept] == [
        "CREATE INDEX CONCURRENTLY ON public.users USING btree ((lower(email)))"]


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
    assert not [r for r in advise(chat_dsn, served, allow_ddl=True).candidates if r.kept]
    unselective = "SELECT count(*) FROM messages WHERE tokens >= 1"  # keeps nearly every row
    assert not [r for r in advise(chat_dsn, unselective, allow_ddl=True).candidates if r.kept]
    result = run_pglab("advise-index", "--dsn", chat_dsn, "--allow-ddl", served)
    assert result.returncode == 0, result.stdout + result.stderr


def test_command_line_json_and_exit_codes(chat_dsn: str) -> None:
    sql = "SELECT id, body FROM messages WHERE conversation_id = 7 ORDER BY created_at DESC LIMIT 20"
    result = run_pglab("advise-index", "--dsn", chat_dsn, "--allow-ddl", "--format", "json", sql)
    assert result.returncode == 1, result.stderr
    (report,) = json.loads(result.stdout)
    assert report["statement"] == sql and any(c["kept"] and c["saving"] >= 0.5 for c in report["candidates"])
    assert report["analyzed"] is True and report["notes"] == []


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
    assert report["analyzed"] is False and "pg_stat_statements" in report["notes"][0]


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
    results = advise(chat_dsn, sql).candidates  # no allow_ddl: hypothetical indexes only
    kept = [r for r in results if r.kept]
    assert kept and all(r.method == "hypopg" and r.ms_after is None for r in results)
    assert max(kept, key=lambda r: r.saving).definition.endswith("(conversation_id, created_at)")
    assert schema_state(chat_dsn) == before


LOOKUP = "SELECT id FROM messages WHERE conversation_id = 7"


def test_a_sequence_is_never_advanced(chat_dsn: str) -> None:
    with psycopg.connect(chat_dsn, autocommit=True) as conn:
        conn.execute("CREATE SEQUENCE ticket_numbers")
    advice = advise(chat_dsn, "SELECT id, nextval('ticket_numbers') FROM messages WHERE conversation_id = 7",
                    allow_ddl=True)
    with psycopg.connect(chat_dsn, autocommit=True) as conn:
        assert conn.execute("SELECT last_value, is_called FROM ticket_numbers").fetchone() == (1, False)
    # Not executed at all (a read-only transaction would also refuse nextval, but only after trying)
    assert not advice.analyzed and advice.notes[0].startswith("planned only") and "nextval" in advice.notes[0]
    assert any(r.kept for r in advice.candidates)  # planned only, still advised
    assert all(r.ms_before is None and r.ms_after is None for r in advice.candidates)


def test_statement_statistics_survive_a_reset_in_the_statement(pgss_dsn: str) -> None:  # noqa: F811
    with psycopg.connect(pgss_dsn, autocommit=True) as conn:
        seed_chat(conn, users=2_000)
        conn.execute("SELECT 1 AS pglab_canary").fetchall()
    sql = "SELECT id, pg_stat_statements_reset() FROM messages WHERE conversation_id = 7"
    advice = advise(pgss_dsn, sql, allow_ddl=True)
    with psycopg.connect(pgss_dsn, autocommit=True) as conn:
        canary = conn.execute("SELECT count(*) FROM pg_stat_statements WHERE query LIKE %s",
                              ("%pglab_canary%",)).fetchone()
    assert canary == (1,)  # the statistics were not wiped
    assert not advice.analyzed and "pg_stat_statements_reset" in advice.notes[0]


SCHEMA = "pglab_side_effects"  # the functions below live here, and the test drops it


@pytest.mark.parametrize(("functions", "why"), [
    # VOLATILE (the default): unsafe whatever it does
    (["CREATE FUNCTION poke(target int) RETURNS boolean LANGUAGE plpgsql AS "
      "$$ BEGIN RETURN pg_cancel_backend(target); END $$"], "VOLATILE"),
    # declared STABLE, which is a lie: its body still names a denied function
    (["CREATE FUNCTION poke(target int) RETURNS boolean LANGUAGE sql STABLE AS $$ SELECT pg_cancel_backend(target) $$"],
     "pg_cancel_backend"),
    # STABLE, and so is its body: it only calls a function of its own, which is VOLATILE and cancels
    (["CREATE FUNCTION cancel_it(target int) RETURNS boolean LANGUAGE sql AS $$ SELECT pg_cancel_backend(target) $$",
      "CREATE FUNCTION poke(target int) RETURNS boolean LANGUAGE sql STABLE AS "
      f"$$ SELECT {SCHEMA}.cancel_it(target) $$"],
     "cancel_it(), which is VOLATILE"),
    # STABLE, and the denied name only exists once it runs
    (["CREATE FUNCTION poke(target int) RETURNS boolean LANGUAGE plpgsql STABLE AS $$ DECLARE done boolean; "
      "BEGIN EXECUTE 'SELECT pg_' || 'cancel_backend($1)' INTO done USING target; RETURN done; END $$"], "EXECUTE"),
], ids=["volatile", "stable-naming-it", "stable-calling-a-volatile-one", "stable-executing-built-sql"])
def test_a_function_that_cancels_another_session_is_not_run(chat_dsn: str, functions: list[str], why: str) -> None:
    with psycopg.connect(chat_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {SCHEMA}")
        conn.execute(f"SET search_path = {SCHEMA}")
        for function in functions:
            conn.execute(function)
    try:
        with psycopg.connect(chat_dsn, autocommit=True) as dummy:
            pid = dummy.info.backend_pid
            outcome: list[Any] = []
            worker = threading.Thread(target=lambda: outcome.append(sleep_or_error(dummy)))
            worker.start()
            try:
                wait_until_active(chat_dsn, pid)
                advice = advise(chat_dsn, f"SELECT id, {SCHEMA}.poke({pid}) FROM messages WHERE conversation_id = 7",
                                allow_ddl=True)
                assert wait_until_active(chat_dsn, pid), "the dummy session's statement was cancelled"
            finally:
                with psycopg.connect(chat_dsn, autocommit=True) as conn:
                    conn.execute("SELECT pg_cancel_backend(%s)", (pid,))  # end the dummy's sleep ourselves
                worker.join(10)
    finally:
        with psycopg.connect(chat_dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {SCHEMA} CASCADE")
    assert not advice.analyzed and "poke" in advice.notes[0] and why in advice.notes[0], advice.notes
    assert any(r.kept for r in advice.candidates)


def sleep_or_error(conn: psycopg.Connection[Any]) -> str:
    try:
        conn.execute("SELECT pg_sleep(60)")
    except psycopg.Error as error:
        return type(error).__name__
    return "finished"


def wait_until_active(dsn: str, pid: int) -> bool:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for _ in range(100):
            row = conn.execute("SELECT state, query FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
            if row and row[0] == "active" and "pg_sleep" in row[1]:
                return True
            time.sleep(0.05)
    return False


def test_side_effect_free_functions_are_still_measured(chat_dsn: str) -> None:
    advice = advise(chat_dsn, "SELECT id, lower(body), random() FROM messages WHERE conversation_id = 7 "
                              "AND created_at < now()", allow_ddl=True)
    assert advice.analyzed and not advice.notes, advice.notes


def test_functions_of_your_own_that_are_free_of_effects_are_still_measured(chat_dsn: str) -> None:
    with psycopg.connect(chat_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {SCHEMA}")
        conn.execute(f"SET search_path = {SCHEMA}, public")
        conn.execute("CREATE FUNCTION shout(words text) RETURNS text LANGUAGE sql IMMUTABLE AS "
                     "$$ SELECT upper(words) $$")
        conn.execute(f"CREATE FUNCTION headline(words text) RETURNS text LANGUAGE plpgsql STABLE AS $$ DECLARE "
                     f"short text := left(words, 40); BEGIN short := {SCHEMA}.shout(short); RETURN short; END $$")
    try:
        advice = advise(chat_dsn, f"SELECT id, {SCHEMA}.headline(body) FROM messages WHERE conversation_id = 7",
                        allow_ddl=True)
    finally:
        with psycopg.connect(chat_dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {SCHEMA} CASCADE")
    assert advice.analyzed and not advice.notes, advice.notes  # followed two levels down: nothing to fear


def test_a_view_that_calls_a_volatile_function_is_not_run(chat_dsn: str) -> None:
    with psycopg.connect(chat_dsn, autocommit=True) as conn:
        conn.execute("CREATE SEQUENCE hits")
        conn.execute("CREATE VIEW counted AS SELECT m.*, nextval('hits') AS hit FROM messages m")
        conn.execute("CREATE VIEW recent AS SELECT * FROM counted WHERE created_at > now() - interval '1 day'")
    advice = advise(chat_dsn, "SELECT id FROM recent WHERE conversation_id = 7", allow_ddl=True)
    assert not advice.analyzed and advice.notes[0].startswith("planned only") and "nextval" in advice.notes[0]


def test_never_an_index_on_a_system_catalog(chat_dsn: str) -> None:
    advice = advise(chat_dsn, "SELECT nspname FROM pg_namespace WHERE nspowner = 10 ORDER BY nspacl::text",
                    allow_ddl=True)
    assert not [r.definition for r in advice.candidates if "pg_namespace" in r.definition]
    assert any("pg_catalog.pg_namespace" in note and "system catalog" in note for note in advice.notes)


def test_the_suggested_ddl_works_as_written_on_another_schema(chat_dsn: str) -> None:
    with psycopg.connect(chat_dsn, autocommit=True) as conn:
        conn.execute('CREATE SCHEMA "Sales"; CREATE TABLE "Sales".orders (id int, "order" int, customer int)')
        conn.execute('INSERT INTO "Sales".orders SELECT i, i, i % 500 FROM generate_series(1, 20000) i')
        conn.execute('ANALYZE "Sales".orders')
    advice = advise(chat_dsn, 'SELECT id FROM "Sales".orders WHERE customer = 5 ORDER BY "order"', allow_ddl=True)
    expected = 'CREATE INDEX CONCURRENTLY ON "Sales".orders USING btree (customer, "order")'
    assert expected in [r.definition for r in advice.candidates if r.kept], advice
    run_as_written(chat_dsn, expected)
    with psycopg.connect(chat_dsn, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM pg_indexes WHERE schemaname = 'Sales'").fetchone() == (1,)


def test_dml_is_refused_first_with_select_only(chat_dsn: str) -> None:
    result = run_pglab("advise-index", "--dsn", chat_dsn, "--allow-ddl", "UPDATE messages SET tokens = 0 WHERE id = 1")
    assert_one_line_error(result, "SELECT only")
    assert result.stderr.startswith("pglab: error: SELECT only"), result.stderr


def test_a_locked_table_is_a_note_not_a_hang(chat_dsn: str) -> None:
    with psycopg.connect(chat_dsn) as holder:
        holder.execute("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
        started = time.perf_counter()
        advice = advise(chat_dsn, LOOKUP, allow_ddl=True)
        elapsed = time.perf_counter() - started
        holder.rollback()
    assert elapsed < 20 and not advice.candidates
    assert any("lock timeout" in note for note in advice.notes), advice.notes


def test_one_locked_statement_does_not_abort_the_run(pgss_dsn: str) -> None:  # noqa: F811
    with psycopg.connect(pgss_dsn, autocommit=True) as conn:
        seed_chat(conn, users=12_000)
        for number in range(1, 11):
            conn.execute("SELECT id FROM messages WHERE conversation_id = %s", (number,)).fetchall()
            conn.execute("SELECT id FROM users WHERE name = %s", (f"user {number}",)).fetchall()
    with psycopg.connect(pgss_dsn) as holder:
        holder.execute("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
        result = run_pglab("advise-index", "--dsn", pgss_dsn, "--allow-ddl", "--format", "json", "--top", "5",
                           timeout=60)
        holder.rollback()
    assert result.returncode == 1, result.stderr  # the users lookup still got its index
    reports = {report["statement"]: report for report in json.loads(result.stdout)}
    (locked,) = [r for statement, r in reports.items() if "FROM messages" in statement]
    (served,) = [r for statement, r in reports.items() if "FROM users" in statement]
    assert any("lock timeout" in note for note in locked["notes"]) and not locked["candidates"]
    assert any(c["kept"] for c in served["candidates"])
