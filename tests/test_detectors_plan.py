"""Plan rules on a live server: each naive statement of a reference fix trips its rule, both from
an analysed plan and from a plain EXPLAIN; after the fix's migration the fixed statement is quiet;
near misses (small tables, hashed subplans, index probes) never trip it."""

from __future__ import annotations

from typing import Any

import psycopg
import psycopg.sql
import pytest
from test_detectors_support import ids, of, run_block, seed_chat, statements

from pglab.lab.core.fixes import fix_blocks
from pglab.lab.runtime.plans import analyze_plan, catalog_facts, check_statement, explain, is_read_only_select
from pglab.lab.runtime.registry import detector_modules

# Every detector with a plan rule is proven on its own fix file, found by discovery.
PLAN_RULES = {entry_id: module for entry_id, module in detector_modules().items() if hasattr(module, "check_plan")}


def naive_and_fixed(entry_id: str) -> tuple[str, str]:
    blocks = fix_blocks(entry_id)
    return statements(blocks["naive"])[-1], statements(blocks["fixed"])[-1]


@pytest.fixture
def chat(pg_conn: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    seed_chat(pg_conn, users=12_000, notifications=12_000)
    return pg_conn


@pytest.mark.parametrize("entry_id", sorted(PLAN_RULES))
def test_naive_statement_trips_the_rule_and_the_fix_quiets_it(chat: psycopg.Connection[Any], entry_id: str) -> None:
    module = PLAN_RULES[entry_id]
    params = module.EXAMPLE_PARAMS
    if hasattr(module, "EXAMPLE_SEED"):  # a rule that needs other data than the shared fixture's
        chat.execute("DROP TABLE notifications, messages, conversation_members, conversations, users")
        seed_chat(chat, users=12_000, **module.EXAMPLE_SEED)
    for name, value in getattr(module, "EXAMPLE_SETTINGS", {}).items():
        chat.execute(psycopg.sql.SQL("SET {} = {}").format(psycopg.sql.Identifier(name), psycopg.sql.Literal(value)))
    analyses = (True, False) if getattr(module, "EXAMPLE_ANALYZE", True) else (False,)
    run_block(chat, entry_id, "setup")
    naive, fixed = naive_and_fixed(entry_id)
    for analyze in analyses:
        found = of(check_statement(chat, naive, params or None, analyze=analyze), entry_id)
        assert found, f"{entry_id} did not fire (analyze={analyze})"
        assert found[0].evidence["plan_excerpt"] and found[0].code.startswith("PGL")
    run_block(chat, entry_id, "migrate")
    chat.execute("ANALYZE")
    for analyze in analyses:
        assert entry_id not in ids(check_statement(chat, fixed, params or None, analyze=analyze)), analyze


def test_not_in_fires_once_the_subquery_outgrows_work_mem(chat: psycopg.Connection[Any]) -> None:
    naive, fixed = naive_and_fixed("not_in_subquery")
    assert "not_in_subquery" not in ids(check_statement(chat, naive, analyze=False))  # fits in work_mem: hashed
    chat.execute("SET work_mem = '64kB'")  # a subquery result too big to hash, at test scale
    found = of(check_statement(chat, naive, analyze=False), "not_in_subquery")
    assert found and "correlated_subquery" not in ids(check_statement(chat, naive, analyze=False))
    assert "not_in_subquery" not in ids(check_statement(chat, fixed))


def test_correlated_running_total_over_an_index_range(chat: psycopg.Connection[Any]) -> None:
    """A SubPlan that probes the primary key by range but filters on the conversation: each run
    reads every earlier message of the table. Seen in the analysed plan and, by cost, the plain one."""
    naive = ("SELECT m.id, m.tokens, (SELECT sum(e.tokens) FROM messages e WHERE e.conversation_id = m.conversation_id"
             " AND e.id <= m.id) FROM messages m WHERE m.conversation_id = %s ORDER BY m.id DESC LIMIT 200")
    fixed = ("SELECT id, tokens, running_total FROM (SELECT id, tokens, sum(tokens) OVER (ORDER BY id) AS running_total"
             " FROM messages WHERE conversation_id = %s) AS totals ORDER BY id DESC LIMIT 200")
    for analyze in (True, False):
        assert "correlated_subquery" in ids(check_statement(chat, naive, (3,), analyze=analyze)), analyze
        assert "correlated_subquery" not in ids(check_statement(chat, fixed, (3,), analyze=analyze)), analyze
    generic = explain(chat, naive.replace("%s", "$1"))
    assert "correlated_subquery" in ids(analyze_plan(generic, *catalog_facts(chat, generic)))
    # as pg_stat_statements stores it: LIMIT $2, which the planner guesses at 10 % of the rows
    generic = explain(chat, naive.replace("%s", "$1").replace("LIMIT 200", "LIMIT $2"))
    assert "correlated_subquery" in ids(analyze_plan(generic, *catalog_facts(chat, generic)))


def test_small_tables_are_never_flagged(pg_conn: psycopg.Connection[Any]) -> None:
    seed_chat(pg_conn, users=50, conversations=20, messages=2_000)
    for entry_id, module in PLAN_RULES.items():
        params = module.EXAMPLE_PARAMS
        run_block(pg_conn, entry_id, "setup")
        naive, _ = naive_and_fixed(entry_id)
        if entry_id == "select_star_payload":
            continue  # payload size, not table size, is that rule's gate
        if entry_id == "sort_without_index":
            continue  # its setup gives five owners 40,000 conversations each: deliberately not small
        small = {**params, "offset": 500} if "offset" in params else params  # skips stay under the gate
        small = {**small, "page": 20} if "page" in small else small  # 20 runs over 100-message conversations
        found = check_statement(pg_conn, naive, small or None)
        assert entry_id not in ids(found), (entry_id, [f.message for f in found])


def test_near_misses_stay_quiet(chat: psycopg.Connection[Any]) -> None:
    chat.execute("CREATE INDEX ON messages (conversation_id)")
    chat.execute("ANALYZE")
    quiet = {
        # a correlated subquery that probes an index reads each message once overall
        "SELECT c.id, (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id) FROM conversations c": (
            "correlated_subquery"),
        # ORDER BY ... LIMIT over an aggregate: no index could deliver that order
        "SELECT conversation_id, count(*) FROM messages GROUP BY 1 ORDER BY 2 DESC LIMIT 5": "sort_without_index",
        # keyset pagination reads only the page
        "SELECT id FROM messages WHERE id > 20000 ORDER BY id LIMIT 50": "offset_pagination",
        # a filter that keeps most rows is not an index's job
        "SELECT count(*) FROM messages WHERE tokens >= 1": "missing_index",
        # a function on an unindexed column is a missing index at most, not a non-sargable one
        "SELECT id FROM messages WHERE lower(body) = 'x'": "non_sargable_predicate",
        # anchored LIKE on a small table
        "SELECT id FROM users WHERE name LIKE 'user 1%' AND id < 100": "ilike_scan",
        # narrow rows, however many
        "SELECT id, conversation_id FROM messages": "select_star_payload",
    }
    for sql, entry_id in quiet.items():
        for analyze in (True, False):
            assert entry_id not in ids(check_statement(chat, sql, analyze=analyze)), (sql, analyze)


def test_explain_analyze_only_runs_plain_selects(chat: psycopg.Connection[Any]) -> None:
    assert is_read_only_select("SELECT 1")
    for sql in ("DELETE FROM messages", "SELECT * FROM messages FOR UPDATE", "SELECT * INTO copy FROM messages",
                "WITH gone AS (DELETE FROM messages RETURNING id) SELECT count(*) FROM gone"):
        assert not is_read_only_select(sql)
        plan = explain(chat, sql)
        assert "Actual Loops" not in plan["Plan"], sql  # planned, never executed
    assert chat.execute("SELECT count(*) FROM messages").fetchone() == (30_000,)
    analysed = explain(chat, "SELECT count(*) FROM messages WHERE conversation_id = %s", (3,))
    assert analysed["Plan"]["Actual Loops"] == 1 and "Execution Time" in analysed
    generic = explain(chat, "SELECT id FROM messages WHERE conversation_id = $1 AND body ILIKE $2 LIMIT $3")
    assert "~~*" in str(generic)


def test_explain_analyze_is_rolled_back_and_read_only(chat: psycopg.Connection[Any]) -> None:
    with pytest.raises(Exception, match="read-only transaction"):
        explain(chat, "SELECT nextval('messages_id_seq')")
    assert chat.execute("SELECT last_value FROM messages_id_seq").fetchone() == (30_000,)


def test_few_runs_of_a_large_scan_are_quadratic_too(pg_conn: psycopg.Connection[Any]) -> None:
    """20 outer rows, each re-reading 60k unindexed messages: under min_loops, but 1.2M rows read."""
    seed_chat(pg_conn, messages=60_000)
    naive = ("SELECT c.id, (SELECT sum(m.tokens) FROM messages m WHERE m.conversation_id = c.id)"
             " FROM conversations c WHERE c.id <= 20")
    fixed = ("SELECT c.id, t.total FROM conversations c LEFT JOIN (SELECT conversation_id, sum(tokens) AS total"
             " FROM messages GROUP BY conversation_id) t ON t.conversation_id = c.id WHERE c.id <= 20")
    for analyze in (True, False):
        assert "correlated_subquery" in ids(check_statement(pg_conn, naive, analyze=analyze)), analyze
        assert "correlated_subquery" not in ids(check_statement(pg_conn, fixed, analyze=analyze)), analyze
    pg_conn.execute("CREATE INDEX ON messages (conversation_id)")  # near miss: 20 index probes read little
    pg_conn.execute("ANALYZE")
    for analyze in (True, False):
        assert "correlated_subquery" not in ids(check_statement(pg_conn, naive, analyze=analyze)), analyze
