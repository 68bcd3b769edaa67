"""`pglab advise-index`: candidate indexes for a slow statement, each validated for real.

Candidates come from the statement's plan: the columns its scans filter on (equality columns
first, then one range or sort column, the order a B-tree serves best), the expressions it wraps
columns in, the sort keys above a scan, and LIKE patterns (a trigram GIN index). Each candidate
is then measured, never guessed: with hypopg when the database has it (a hypothetical index, plan
cost only), otherwise by creating the index inside a transaction, running EXPLAIN ANALYZE there and
rolling back. Creating an index takes a lock that blocks writes to the table while it builds, so
that route needs `--allow-ddl` on any server pglab did not start itself. A candidate is kept only
when it cuts the plan's cost by at least `min_saving` (half, by default) and the plan uses it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import psycopg
from pglast import ast as pg
from pglast import parse_sql
from pglast.enums.parsenodes import A_Expr_Kind
from pglast.parser import ParseError
from pglast.stream import RawStream
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from pglab.lab.core.errors import UserError
from pglab.lab.core.sql import statement_kind, walk_nodes
from pglab.lab.postgres.launcher import connect
from pglab.lab.postgres.state import read_state
from pglab.lab.runtime.plans import EXPLAIN_TIMEOUT_MS, Node, explain, is_read_only_select, walk
from pglab.lab.runtime.stats import MARKER

MIN_SAVING = 0.5
MAX_CANDIDATES = 6
RANGE_OPERATORS = ("<", ">", "<=", ">=")
LIKE_OPERATORS = ("~~", "~~*")


@dataclass(frozen=True)
class Candidate:
    table: str
    columns: tuple[str, ...]  # column names, or a parenthesised expression
    method: str = "btree"

    def ddl(self, name: str) -> sql.Composed:
        parts: list[sql.Composable] = [sql.SQL(column) if column.startswith("(") else sql.Identifier(column)
                                       for column in self.columns]
        if self.method == "gin":
            parts = [sql.SQL("{} gin_trgm_ops").format(part) for part in parts]
        return sql.SQL("CREATE INDEX {} ON {} USING {} ({})").format(
            sql.Identifier(name), sql.Identifier(self.table), sql.SQL(self.method), sql.SQL(", ").join(parts))

    @property
    def definition(self) -> str:
        opclass = " gin_trgm_ops" if self.method == "gin" else ""
        return f"CREATE INDEX ON {self.table} USING {self.method} ({', '.join(c + opclass for c in self.columns)})"


@dataclass
class Measured:
    definition: str
    cost_before: float
    cost_after: float
    ms_before: float | None
    ms_after: float | None
    used: bool
    kept: bool
    method: str  # "hypopg" or "rolled-back index"
    note: str = ""  # why it could not be measured (hypopg does not do GIN, a lock timed out...)

    @property
    def saving(self) -> float:
        return 1 - self.cost_after / self.cost_before if self.cost_before else 0.0


@dataclass
class _Predicates:
    equality: list[str]
    ranges: list[str]
    likes: list[str]
    expressions: list[str]


def _column(node: Any, aliases: set[str]) -> str | None:
    """A column of the scanned relation: a bare name, or one qualified by the scan's alias."""
    if not isinstance(node, pg.ColumnRef):
        return None
    names = [getattr(field, "sval", None) for field in node.fields or ()]
    if len(names) == 1 or (len(names) == 2 and names[0] in aliases):
        return names[-1]
    return None


def predicates(condition: str, aliases: set[str]) -> _Predicates:
    """The columns (and wrapped columns) a plan condition compares, by kind of comparison."""
    found = _Predicates([], [], [], [])
    try:
        select: Any = parse_sql(f"SELECT 1 WHERE {condition}")[0].stmt
        where = select.whereClause
    except ParseError:
        return found  # SubPlan references and the like: nothing an index on this table serves
    for expr in walk_nodes(where):
        if not isinstance(expr, pg.A_Expr) or not expr.name or expr.kind != A_Expr_Kind.AEXPR_OP:
            continue
        operator = expr.name[-1].sval
        for side in (expr.lexpr, expr.rexpr):
            column = _column(side, aliases)
            if column and operator == "=":
                found.equality.append(column)
            elif column and operator in RANGE_OPERATORS:
                found.ranges.append(column)
            elif column and operator in LIKE_OPERATORS:
                found.likes.append(column)
            elif (operator in ("=", *RANGE_OPERATORS) and isinstance(side, pg.FuncCall | pg.TypeCast)
                  and any(_column(inner, aliases) for inner in walk_nodes(side))):
                found.expressions.append(f"({RawStream()(side)})")
    return found


def _sort_columns(scan: Node) -> list[str]:
    parent = scan.parent
    while parent is not None and parent.type in ("Gather", "Gather Merge"):
        parent = parent.parent
    if parent is None or parent.type != "Sort":
        return []
    columns = []
    for key in parent.raw.get("Sort Key", []):
        name = key.split()[0].split(".")[-1]
        if name.isidentifier():
            columns.append(name)
    return columns


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def candidates(plan: dict[str, Any]) -> list[Candidate]:
    """Index candidates for the tables a plan scans with a Filter or sorts after scanning."""
    found: list[Candidate] = []
    for scan in walk(plan):
        table = scan.relation
        if not scan.is_scan or not table:
            continue
        aliases = {table, scan.raw.get("Alias", table)}
        where = predicates(scan.filter, aliases) if scan.filter else _Predicates([], [], [], [])
        equality, ranges, sort = _unique(where.equality), _unique(where.ranges), _unique(_sort_columns(scan))
        tail = ranges[:1] or [column for column in sort if column not in equality]
        shapes = [equality + tail, equality + sort, *([column] for column in equality), ranges[:1], sort]
        shapes += [[expression] for expression in _unique(where.expressions)]
        found += [Candidate(table, tuple(shape)) for shape in shapes if shape]
        found += [Candidate(table, (column,), "gin") for column in _unique(where.likes)]
    return list(dict.fromkeys(found))[:MAX_CANDIDATES]


def owned_by_pglab(dsn: str) -> bool:
    """Whether `dsn` names the throwaway server `pglab db start` is running."""
    state = read_state()
    if not state:
        return False
    try:
        port = str(conninfo_to_dict(dsn).get("port") or "5432")
    except psycopg.ProgrammingError:
        return False
    return port == str(state.get("port"))


def _has_extension(conn: psycopg.Connection[Any], name: str) -> bool:
    row = conn.execute(f"SELECT {MARKER} count(*) FROM pg_extension WHERE extname = %s", (name,)).fetchone()
    return bool(row and row[0])


def _figures(plan: dict[str, Any]) -> tuple[float, float | None]:
    return float(plan["Plan"]["Total Cost"]), plan.get("Execution Time")


def _uses(plan: dict[str, Any], index_name: str) -> bool:
    return index_name in json.dumps(plan)


def _measure_hypothetical(conn: psycopg.Connection[Any], statement: str, candidate: Candidate) -> tuple[dict, str]:
    ddl = candidate.ddl("pglab_hypothetical").as_string(conn)
    row = conn.execute("SELECT indexname FROM hypopg_create_index(%s)", (ddl,)).fetchone()
    try:
        return explain(conn, statement, analyze=False), str(row[0] if row else "")
    finally:
        conn.execute("SELECT hypopg_reset()")


def _measure_real(conn: psycopg.Connection[Any], statement: str, candidate: Candidate,
                  analyze: bool) -> tuple[dict, str]:
    name = "pglab_advise_candidate"
    with conn.transaction(force_rollback=True):  # the index never outlives the measurement
        conn.execute(f"SET LOCAL statement_timeout = {EXPLAIN_TIMEOUT_MS * 4}")
        conn.execute("SET LOCAL lock_timeout = '2s'")
        if candidate.method == "gin" and not _has_extension(conn, "pg_trgm"):
            conn.execute("CREATE EXTENSION pg_trgm")
        conn.execute(candidate.ddl(name))
        return explain(conn, statement, analyze=analyze), name


def advise(dsn: str, statement: str, allow_ddl: bool = False, min_saving: float = MIN_SAVING) -> list[Measured]:
    """Every candidate for `statement`, measured; `kept` marks those worth creating."""
    analyze = is_read_only_select(statement) and "$1" not in statement
    with connect(dsn, application_name="pglab advise-index") as conn:
        hypothetical = _has_extension(conn, "hypopg")
        if not hypothetical and not (allow_ddl or owned_by_pglab(dsn)):
            raise UserError("validating an index needs the hypopg extension in this database, or --allow-ddl to "
                            "create each candidate inside a transaction that is rolled back (it blocks writes to "
                            "the table while the index builds)")
        before = explain(conn, statement, analyze=analyze)
        cost_before, ms_before = _figures(before)
        results = []
        for candidate in candidates(before):
            try:
                if hypothetical:
                    after, name = _measure_hypothetical(conn, statement, candidate)
                else:
                    after, name = _measure_real(conn, statement, candidate, analyze)
            except (psycopg.Error, UserError) as error:
                after, name = before, ""
                note = str(error).strip().splitlines()[0]
            else:
                note = ""
            cost_after, ms_after = _figures(after)
            used = bool(name) and _uses(after, name)
            results.append(Measured(
                definition=candidate.definition, cost_before=cost_before, cost_after=cost_after,
                ms_before=ms_before, ms_after=ms_after if name else None, used=used,
                kept=used and cost_after <= (1 - min_saving) * cost_before,
                method="hypopg" if hypothetical else "rolled-back index", note=note))
    return results


def top_statements(dsn: str, count: int) -> list[str]:
    """The costliest SELECTs pg_stat_statements recorded in this database."""
    with connect(dsn, application_name="pglab advise-index") as conn:
        if not _has_extension(conn, "pg_stat_statements"):
            raise UserError("no statement given and pg_stat_statements is not installed in this database")
        rows = conn.execute(f"""SELECT {MARKER} query FROM pg_stat_statements
            WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
            ORDER BY total_exec_time DESC LIMIT 200""").fetchall()
    chosen = [query for (query,) in rows if MARKER not in query and statement_kind(query) == "select"]
    return [query for query in chosen if is_read_only_select(query)][:count]
