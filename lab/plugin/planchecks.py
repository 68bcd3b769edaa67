"""The plugin's plan checks: EXPLAIN each distinct statement shape a test sent, once, and run the
plan rules of `detectors/` over the plan.

Where the plan is read matters. A statement whose connection still holds an open transaction at
the end of the test (the common fixture that runs each test in a transaction and rolls it back)
may read rows no other connection can see: its plan is read on that same connection, inside a
savepoint that is rolled back. That works for psycopg connections, sync and async (an async one
through `pglab.lab.plugin.asyncview`). An asyncpg connection cannot be driven from here (it is
bound to the test's event loop), so its statements are planned on another connection, and when it
still holds a transaction the test is told that the plan cannot see the rows it has not committed.
Every other statement is planned on a connection of its own to the database it used. A plan that
cannot be read, or is read with such a caveat, is said per test, with the reason.

Plans are read with EXPLAIN ANALYZE (real row counts) only when the side-effect judge
(`pglab.lab.runtime.sideeffects`) finds nothing in the statement that a rollback would not undo;
otherwise with plain EXPLAIN, and the test is told why.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row, tuple_row

from pglab.lab.core.errors import UserError
from pglab.lab.core.findings import Finding
from pglab.lab.core.sql import INDEX_COLUMNS_SQL, leading_columns, placeholder_names, short, to_dollar_placeholders
from pglab.lab.plugin.records import Handle, Statement
from pglab.lab.plugin.settings import Settings
from pglab.lab.plugin.shapes import shape_of

PLAN_LOCK_TIMEOUT_MS = 1000
_TABLES_SQL = """
SELECT c.oid, n.nspname, c.relname, c.reltuples, c.relpages
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
"""


@dataclass
class Catalog:
    """What the plan rules need to know about the test database's tables."""

    table_rows: dict[str, float] = field(default_factory=dict)
    indexed_columns: dict[str, frozenset[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def read_catalog(conn: Any, scale: float) -> Catalog:
    """Table sizes and leading index columns, in the caller's transaction (always rolled back).

    Tables never analysed (created and filled by the test itself) are analysed first, so the
    planner and the size gate see their real row counts. With `scale` > 1 the planner statistics
    are scaled: the row count grows by `scale` while the page count stays, so the planner costs a
    scan of a small test table as it would the production table, and picks an index when one
    exists. Writing pg_class needs a superuser; without one the statistics stay as they are.
    """
    from psycopg import sql

    catalog = Catalog()
    if scale > 1 and conn.execute("SELECT current_setting('is_superuser') = 'on'").fetchone()[0] is not True:
        catalog.notes.append("planner statistics not scaled: scaling writes pg_class, which needs a superuser")
        scale = 1.0
    tables = conn.execute(_TABLES_SQL).fetchall()
    stale = [sql.Identifier(schema, name) for _, schema, name, reltuples, _ in tables if reltuples < 0 or scale > 1]
    if stale:
        conn.execute(sql.SQL("ANALYZE {}").format(sql.SQL(", ").join(stale)))
        tables = conn.execute(_TABLES_SQL).fetchall()
    for oid, _, name, reltuples, relpages in tables:
        rows = max(float(reltuples), 0.0)
        if scale > 1:
            rows *= scale
            conn.execute("UPDATE pg_class SET reltuples = $1, relpages = $2 WHERE oid = $3",
                         (rows, max(int(relpages), 1), oid))
        catalog.table_rows[name] = rows
    with conn.cursor(row_factory=dict_row) as cursor:
        catalog.indexed_columns = leading_columns(cursor.execute(INDEX_COLUMNS_SQL).fetchall())
    return catalog


@dataclass
class PlanOutcome:
    findings: list[Finding] = field(default_factory=list)
    explained: int = 0
    skipped: list[str] = field(default_factory=list)  # why a statement could not be planned
    caveats: list[str] = field(default_factory=list)  # plans read, but not as fully as they could be


OWN, ABORTED, ELSEWHERE, BLIND = "own", "aborted", "elsewhere", "blind"
_BLIND_NOTE = "planned on another connection: this test's uncommitted rows are not visible to the plan"


def _where(handle: Handle | None) -> tuple[str, str]:
    """Where a statement's plan sees the data it read, with the reason when that is not where it
    ran: OWN (its connection, still in a transaction), ABORTED (that transaction is aborted, so
    nothing can read it), ELSEWHERE (no open transaction: what it read is visible anywhere) or
    BLIND (planned elsewhere although its connection may hold rows nobody else sees)."""
    if handle is None:
        return ELSEWHERE, ""
    conn = handle.conn
    if handle.driver == "asyncpg":
        if conn.is_closed() or not conn.is_in_transaction():
            return ELSEWHERE, ""
        return BLIND, "asyncpg: its connection cannot be used outside the test's event loop"
    if conn.closed:
        return ELSEWHERE, ""
    status = conn.pgconn.transaction_status
    if status == pq.TransactionStatus.INTRANS:
        return OWN, ""
    if status == pq.TransactionStatus.INERROR:
        return ABORTED, ""
    if status == pq.TransactionStatus.ACTIVE:
        return BLIND, "its own connection was still busy with a statement when the test ended"
    return ELSEWHERE, ""


def plan_checks(statements: Sequence[Statement], dsn_of: Mapping[int, str], handles: Mapping[int, Handle],
                settings: Settings) -> PlanOutcome:
    """EXPLAIN each distinct explainable statement shape once, where its data is visible (see the
    module's docstring), and run the plan rules over the plan."""
    outcome = PlanOutcome()
    firsts: dict[str, Statement] = {}
    for statement in statements:
        if statement.control or statement.failed:
            continue
        shape = shape_of(statement.sql, statement.has_params)
        if shape.explainable and statement.connection in dsn_of:
            firsts.setdefault(shape.fingerprint, statement)
    on_own: dict[int, list[Statement]] = defaultdict(list)
    by_dsn: dict[str, list[Statement]] = defaultdict(list)
    for statement in firsts.values():
        where, why = _where(handles.get(statement.connection))
        if where == ABORTED:
            outcome.skipped.append(f"{statement.call_site}: plan not read: the test left its transaction aborted, "
                                   f"and its data is visible nowhere else: {short(statement.sql, 80)}")
        elif where == OWN:
            on_own[statement.connection].append(statement)
        else:
            if where == BLIND:
                outcome.caveats.append(f"{statement.call_site}: {_BLIND_NOTE} ({why}): {short(statement.sql, 80)}")
            by_dsn[dsn_of[statement.connection]].append(statement)
    for key, chosen in on_own.items():
        with _borrowed(handles[key].conn) as conn:
            _plan_on(conn, chosen, settings, outcome)
    for dsn, chosen in by_dsn.items():
        try:
            with psycopg.connect(dsn, autocommit=True, cursor_factory=psycopg.RawCursor) as conn:
                _plan_on(conn, chosen, settings, outcome)
        except psycopg.Error as error:  # the test dropped its database, say: nothing left to plan
            dbname = conninfo_to_dict(dsn).get("dbname")
            outcome.skipped.append(f"no plans from database {dbname}: {str(error).strip().splitlines()[0]}")
    return outcome


@contextmanager
def _borrowed(conn: Any) -> Iterator[Any]:
    """The test's own connection with the tuple rows and raw cursors the plan code uses, its own
    factories put back afterwards; an async one as a blocking view (`asyncview`)."""
    if isinstance(conn, psycopg.AsyncConnection):
        from pglab.lab.plugin.asyncview import sync_view

        with sync_view(conn) as view:
            yield view
        return
    factories = conn.cursor_factory, conn.row_factory
    conn.cursor_factory, conn.row_factory = psycopg.RawCursor, tuple_row
    try:
        yield conn
    finally:
        conn.cursor_factory, conn.row_factory = factories


@contextmanager
def _client_cursors(conn: Any) -> Iterator[None]:
    """psycopg's own cursors (`%s` placeholders) instead of the raw ones, for the side-effect judge."""
    raw = conn.cursor_factory
    conn.cursor_factory = psycopg.Cursor
    try:
        yield
    finally:
        conn.cursor_factory = raw


def server_form(statement: Statement) -> tuple[str, Any]:
    """The statement with `$n` placeholders and positional parameters, as Postgres itself reads
    it: the form the plan rules and a raw cursor take."""
    if not statement.has_params:
        return statement.sql, (list(statement.params) if statement.params else None)
    if isinstance(statement.params, Mapping):
        names: list[str] = []
        for name in placeholder_names(statement.sql):
            if name and name not in names:
                names.append(name)
        return to_dollar_placeholders(statement.sql), [statement.params[name] for name in names]
    return to_dollar_placeholders(statement.sql), list(statement.params)


def _plan_on(conn: Any, chosen: list[Statement], settings: Settings, outcome: PlanOutcome) -> None:
    """Plan `chosen` on `conn`: a psycopg Connection or the `asyncview` of an AsyncConnection."""
    import pglab.lab.runtime.plans as plans  # imported when plan checks run, not when the plugin loads

    scaled = settings.plan_scale > 1
    try:
        with conn.transaction(force_rollback=True):  # a savepoint when the connection is in a transaction
            # The test may still hold locks in a transaction it left open: wait for none of them.
            conn.execute(f"SET LOCAL lock_timeout = {PLAN_LOCK_TIMEOUT_MS}")
            catalog = read_catalog(conn, settings.plan_scale)
            outcome.skipped += catalog.notes
            for statement in chosen:
                _plan_one(plans, conn, statement, catalog, settings, outcome, analyze=not scaled)
    except psycopg.Error as error:
        outcome.skipped.append(f"plans not read: {str(error).strip().splitlines()[0]}")


def _executable(plans: Any, conn: Any, statement: Statement, sql: str, outcome: PlanOutcome) -> bool:
    """Whether EXPLAIN ANALYZE may run the statement: a plain SELECT whose functions the side-effect
    judge finds free of effects a rollback does not undo (a sequence advanced, a lock or a message
    to another session, a backend cancelled). Otherwise plain EXPLAIN, and the test is told why."""
    from pglab.lab.runtime.sideeffects import judge

    if not plans.is_read_only_select(sql):
        return False  # plans.explain only plans anything else: nothing is executed
    try:
        with conn.transaction(), _client_cursors(conn):  # a savepoint: a failed look-up spoils nothing
            verdict = judge(conn, statement.sql)
        safe, reason = verdict.safe, verdict.reason
    except psycopg.Error as error:
        safe, reason = False, f"its functions could not be checked: {str(error).strip().splitlines()[0]}"
    if not safe:
        outcome.caveats.append(f"{statement.call_site}: plain EXPLAIN, not ANALYZE: {reason}: "
                               f"{short(statement.sql, 80)}")
    return safe


def _plan_one(plans: Any, conn: Any, statement: Statement, catalog: Catalog, settings: Settings,
              outcome: PlanOutcome, analyze: bool) -> None:
    shape = shape_of(statement.sql, statement.has_params)
    sql, params = server_form(statement)
    analyze = analyze and _executable(plans, conn, statement, sql, outcome)
    try:
        plan = plans.explain(conn, sql, params, analyze=analyze)
    except (UserError, psycopg.Error) as error:  # a statement on a temp table the test made, say
        outcome.skipped.append(f"{statement.call_site}: {error}")
        return
    outcome.explained += 1
    for finding in plans.analyze_plan(plan, table_rows=catalog.table_rows, indexed_columns=catalog.indexed_columns):
        outcome.findings.append(replace(
            finding, path=statement.path, line=statement.line, source=statement.sql,
            evidence={**finding.evidence, "check": "plans", "fingerprint": shape.fingerprint,
                      "call_site": statement.call_site, "scaled_statistics": settings.plan_scale},
        ))
