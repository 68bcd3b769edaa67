"""`sideeffects.judge`, the check before advise-index executes a statement, on the routes by which a
function can reach another one (issue 9): through an operator, an aggregate's steps, a variable's
initial value, a function that is a built-in under another name, recursion. What it cannot follow
is unsafe; what it can and finds harmless stays safe, so statements are still measured. The
end-to-end cases, with a session that must survive, are in test_advise.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from pglab.lab.runtime.sideeffects import MAX_DEPTH, judge

SCHEMA = "pglab_judged"
KILL = f"CREATE FUNCTION {SCHEMA}.kill(target int) RETURNS boolean LANGUAGE sql AS 'SELECT pg_cancel_backend(target)'"


@pytest.fixture
def conn(pg_conn: psycopg.Connection[Any]) -> Iterator[psycopg.Connection[Any]]:
    """A session whose functions live in a schema of the test's own, dropped afterwards."""
    pg_conn.execute(f"CREATE SCHEMA {SCHEMA}")
    pg_conn.execute(f"SET search_path = {SCHEMA}, public")
    pg_conn.execute(KILL)
    try:
        yield pg_conn
    finally:
        pg_conn.execute(f"DROP SCHEMA {SCHEMA} CASCADE")


@pytest.mark.parametrize(("definitions", "statement", "why"), [
    ([f"CREATE FUNCTION {SCHEMA}.same(a int, b int) RETURNS boolean LANGUAGE sql STABLE AS 'SELECT kill(a)'",
      f"CREATE OPERATOR {SCHEMA}.=== (leftarg = int, rightarg = int, function = {SCHEMA}.same)"],
     "SELECT 1 === 2", "uses the operator ===, which runs pglab_judged.same(), which calls pglab_judged.kill()"),
    ([f"CREATE FUNCTION {SCHEMA}.step(total int, n int) RETURNS int LANGUAGE sql AS 'SELECT total + n'",
      f"CREATE AGGREGATE {SCHEMA}.total(int) (sfunc = {SCHEMA}.step, stype = int, initcond = '0')"],
     "SELECT total(n) FROM generate_series(1, 3) n", "runs pglab_judged.step(), which is VOLATILE"),
    # The PL/pgSQL parser does not know the domain and drops the initial value: a variable of a type it
    # does not know is itself a reason (its CHECK is unknown too), found before the body's scan
    ([f"CREATE DOMAIN {SCHEMA}.flag AS boolean",
      f"CREATE FUNCTION {SCHEMA}.quiet(target int) RETURNS boolean LANGUAGE plpgsql STABLE AS "
      "$$ DECLARE done flag := kill(target); BEGIN RETURN done; END $$"],
     "SELECT quiet(1)", "declares done of type flag, which pglab cannot check"),
    # A variable of a domain whose CHECK reaches kill(): every assignment runs the check
    ([f"CREATE FUNCTION {SCHEMA}.harmless(n int) RETURNS boolean LANGUAGE sql AS 'SELECT kill(n)'",
      f"CREATE DOMAIN {SCHEMA}.checked AS int CHECK ({SCHEMA}.harmless(VALUE))",
      f"CREATE FUNCTION {SCHEMA}.assigns(n int) RETURNS int LANGUAGE plpgsql STABLE AS "
      "$$ DECLARE v checked; BEGIN v := n; RETURN v; END $$"],
     "SELECT assigns(1)", "declares v of type checked, which pglab cannot check"),
    # pg_cancel_backend itself, under another name, declared STABLE
    ([f"CREATE FUNCTION {SCHEMA}.alias(int) RETURNS boolean LANGUAGE internal STABLE AS 'pg_cancel_backend'"],
     "SELECT alias(1)", "written in internal"),
    ([f"CREATE FUNCTION {SCHEMA}.level0(n int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT n'",
      *[f"CREATE FUNCTION {SCHEMA}.level{i + 1}(n int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT level{i}(n)'"
        for i in range(MAX_DEPTH)]],
     f"SELECT level{MAX_DEPTH}(1)", "more functions than pglab follows"),
    ([f"CREATE FUNCTION {SCHEMA}.step(total int, n int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT total + n'",
      f"CREATE AGGREGATE {SCHEMA}.total(int) (sfunc = {SCHEMA}.step, stype = int, initcond = '0')",
      f"CREATE FUNCTION {SCHEMA}.countdown(n int) RETURNS int LANGUAGE plpgsql STABLE AS $$ DECLARE left_ int; "
      "BEGIN IF n <= 0 THEN RETURN 0; END IF; left_ := countdown(n - 1); RETURN left_ + abs(n); END $$"],
     "SELECT total(countdown(n)) FROM generate_series(1, 3) n", None),
], ids=["operator", "aggregate", "hidden-initial-value", "domain-check", "internal-alias", "too-deep",
        "harmless-recursion"])
def test_what_a_function_reaches_is_judged(conn: psycopg.Connection[Any], definitions: list[str], statement: str,
                                           why: str | None) -> None:
    for definition in definitions:
        conn.execute(definition)
    verdict = judge(conn, statement)
    if why is None:
        assert verdict.safe, verdict.reason
    else:
        assert not verdict.safe and why in verdict.reason, verdict.reason
