"""`pglab advise-index`: candidate indexes for a slow statement, each validated for real.

Candidates come from the statement's plan: the columns its scans filter on (equality columns
first, then one range or sort column, the order a B-tree serves best), the expressions it wraps
columns in, the sort keys above a scan, and LIKE patterns (a trigram GIN index). Each candidate
is then measured, never guessed: with hypopg when the database has it (a hypothetical index, plan
cost only), otherwise by creating the index inside a transaction and rolling back. Creating an
index takes a lock that blocks writes to the table while it builds, so that route needs
`--allow-ddl` on any server pglab did not start itself (known by the secret it carries, see
`pglab.lab.postgres.identity`). A candidate is kept only when it cuts the plan's cost by at least
`min_saving` (half, by default) and the plan uses it.

What it runs on the user's server: one session through `open_session` (read-only, with lock and
statement timeouts); only a SELECT is studied. The statement is executed (EXPLAIN ANALYZE) only
when the user named it and `sideeffects.judge` finds every function it can reach free of effects
a rollback would not undo; otherwise, and always for statements read from pg_stat_statements, it
is only planned (plain EXPLAIN) and a note says why. A statement or candidate that times out
becomes a note; the others are still advised. Suggested DDL is meant to be run as written:
`CREATE INDEX CONCURRENTLY` on the schema-qualified table, never on a system catalog, with
`CREATE EXTENSION IF NOT EXISTS pg_trgm` first when a trigram index needs it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg
from pglast import ast as pg
from pglast import parse_sql
from pglast.enums.parsenodes import A_Expr_Kind
from pglast.keywords import COL_NAME_KEYWORDS, RESERVED_KEYWORDS, TYPE_FUNC_NAME_KEYWORDS
from pglast.parser import ParseError
from pglast.stream import RawStream

from pglab.lab.core.errors import UserError
from pglab.lab.core.sql import statement_kind, walk_nodes
from pglab.lab.postgres.client import first_line, open_session
from pglab.lab.postgres.identity import is_pglab_server
from pglab.lab.runtime.plans import EXPLAIN_TIMEOUT_MS, Node, explain, is_read_only_select, walk
from pglab.lab.runtime.sideeffects import judge
from pglab.lab.runtime.stats import MARKER

PURPOSE = "advise-index"
MIN_SAVING = 0.5
MAX_CANDIDATES = 6
RANGE_OPERATORS = ("<", ">", "<=", ">=")
LIKE_OPERATORS = ("~~", "~~*")
SYSTEM_SCHEMAS = ("pg_catalog", "information_schema")
_KEYWORDS = RESERVED_KEYWORDS | TYPE_FUNC_NAME_KEYWORDS | COL_NAME_KEYWORDS
_PARAM = re.compile(r"\$\d+")


def quote_name(name: str) -> str:
    """An identifier as `quote_ident` writes it: bare when it can be, double-quoted otherwise."""
    if re.fullmatch(r"[a-z_][a-z0-9_$]*", name) and name not in _KEYWORDS:
        return name
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class Candidate:
    table: str
    columns: tuple[str, ...]  # column names, or a parenthesised expression
    method: str = "btree"
    schema: str = ""  # the table's schema, from the catalog (the plan does not say)
    opclass: str = ""  # gin: the trigram operator class, qualified by pg_trgm's schema when installed

    def ddl(self, name: str = "", concurrently: bool = False) -> str:
        columns = ", ".join((column if column.startswith("(") else quote_name(column))
                            + (f" {self.opclass}" if self.opclass else "") for column in self.columns)
        target = ".".join(quote_name(part) for part in (self.schema, self.table) if part)
        head = "CREATE INDEX CONCURRENTLY" if concurrently else "CREATE INDEX"
        return f"{head} {quote_name(name) + ' ' if name else ''}ON {target} USING {self.method} ({columns})"

    @property
    def definition(self) -> str:
        """What to run to create it for good: without blocking writes, extension first if needed."""
        extension = "CREATE EXTENSION IF NOT EXISTS pg_trgm; " if self.opclass == "gin_trgm_ops" else ""
        return extension + self.ddl(concurrently=True)


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
        if len(name) > 2 and name[0] == name[-1] == '"':  # a quoted name ("order"): the name itself
            name = name[1:-1].replace('""', '"')
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


@dataclass
class Advice:
    """Everything advise-index found for one statement; `notes` say what was not done, and why."""

    statement: str
    candidates: list[Measured] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    analyzed: bool = False  # whether the statement was executed (EXPLAIN ANALYZE) or only planned


def _has_extension(conn: psycopg.Connection[Any], name: str) -> bool:
    return _extension_schema(conn, name) is not None


def _extension_schema(conn: psycopg.Connection[Any], name: str) -> str | None:
    row = conn.execute(f"""SELECT {MARKER} n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
        WHERE e.extname = %s""", (name,)).fetchone()
    return str(row[0]) if row else None


def _figures(plan: dict[str, Any]) -> tuple[float, float | None]:
    return float(plan["Plan"]["Total Cost"]), plan.get("Execution Time")


def _uses(plan: dict[str, Any], index_name: str) -> bool:
    return index_name in json.dumps(plan)


def require_select(statement: str) -> None:
    """advise-index studies one plain SELECT; say so first for anything else."""
    if not is_read_only_select(statement):
        kind = statement_kind(statement)
        what = f"this is {'an' if kind in ('insert', 'update') else 'a'} {kind.upper()}" if kind != "other" \
            else "this is not one plain SELECT"
        raise UserError(f"SELECT only: advise-index studies one plain SELECT (no INTO, FOR UPDATE or data-modifying "
                        f"WITH) and {what}; advise on a SELECT with the same WHERE clause instead")


def _may_execute(conn: psycopg.Connection[Any], statement: str, named: bool) -> tuple[bool, str]:
    """Whether EXPLAIN ANALYZE may run `statement`, and when not, the note that says why."""
    planned = "planned only (plain EXPLAIN, estimated costs, nothing executed): "
    if not named:
        return False, planned + ("read from pg_stat_statements, and pglab never executes a statement you did "
                                 "not name; pass it as SQL to have it measured")
    if _PARAM.search(statement):
        return False, planned + "it has $n parameters, so it is planned generically"
    try:
        verdict = judge(conn, statement)
    except psycopg.Error as error:
        return False, planned + f"its functions could not be checked ({first_line(error)})"
    return (True, "") if verdict.safe else (False, planned + verdict.reason)


def _place(conn: psycopg.Connection[Any], candidate: Candidate, trigram_schema: str | None) -> Candidate | str:
    """The candidate on its schema-qualified table, or why no index is suggested there."""
    rows = conn.execute(f"""SELECT {MARKER} n.nspname, pg_table_is_visible(c.oid) FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relname = %s AND c.relkind IN ('r', 'p', 'm') ORDER BY 2 DESC, 1""", (candidate.table,)).fetchall()
    visible = [schema for schema, is_visible in rows if is_visible]
    chosen = visible[:1] or ([rows[0][0]] if len(rows) == 1 else [])
    if not chosen:
        return f"no index suggested on {candidate.table}: its schema is ambiguous or unknown"
    schema = str(chosen[0])
    if schema in SYSTEM_SCHEMAS or schema.startswith("pg_toast"):
        return f"no index suggested on {schema}.{candidate.table}: a system catalog"
    opclass = ""
    if candidate.method == "gin":
        opclass = f"{quote_name(trigram_schema)}.gin_trgm_ops" if trigram_schema else "gin_trgm_ops"
    return replace(candidate, schema=schema, opclass=opclass)


def _measure_hypothetical(conn: psycopg.Connection[Any], statement: str, candidate: Candidate) -> tuple[dict, str]:
    ddl = candidate.ddl("pglab_hypothetical")
    row = conn.execute("SELECT indexname FROM hypopg_create_index(%s)", (ddl,)).fetchone()
    try:
        return explain(conn, statement, analyze=False), str(row[0] if row else "")
    finally:
        conn.execute("SELECT hypopg_reset()")


def _measure_real(conn: psycopg.Connection[Any], statement: str, candidate: Candidate,
                  analyze: bool) -> tuple[dict, str]:
    """Build the index in a transaction that is always rolled back: the only write advise-index makes."""
    name = "pglab_advise_candidate"
    with conn.transaction(force_rollback=True):  # the index never outlives the measurement
        conn.execute("SET TRANSACTION READ WRITE")  # the session is read-only by default
        conn.execute(f"SET LOCAL statement_timeout = {EXPLAIN_TIMEOUT_MS * 4}")
        if candidate.opclass == "gin_trgm_ops":
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        conn.execute(candidate.ddl(name))  # built from catalog names, quoted
        return explain(conn, statement, analyze=analyze), name


def _measure(conn: psycopg.Connection[Any], statement: str, candidate: Candidate, before: dict[str, Any],
             hypothetical: bool, analyze: bool, min_saving: float) -> Measured:
    try:
        if hypothetical:
            after, name = _measure_hypothetical(conn, statement, candidate)
        else:
            after, name = _measure_real(conn, statement, candidate, analyze)
    except (psycopg.Error, UserError) as error:
        after, name, note = before, "", first_line(error)
    else:
        note = ""
    (cost_before, ms_before), (cost_after, ms_after) = _figures(before), _figures(after)
    used = bool(name) and _uses(after, name)
    return Measured(
        definition=candidate.definition, cost_before=cost_before, cost_after=cost_after, ms_before=ms_before,
        ms_after=ms_after if name else None, used=used, kept=used and cost_after <= (1 - min_saving) * cost_before,
        method="hypopg" if hypothetical else "rolled-back index", note=note)


def advise(dsn: str, statement: str, allow_ddl: bool = False, min_saving: float = MIN_SAVING,
           named: bool = True) -> Advice:
    """Every candidate for `statement`, measured; `kept` marks those worth creating.

    `named` is False for statements pglab found itself (pg_stat_statements): those are never executed."""
    require_select(statement)
    with open_session(dsn, PURPOSE) as conn:
        hypothetical = _has_extension(conn, "hypopg")
        if not hypothetical and not (allow_ddl or is_pglab_server(conn)):
            raise UserError("validating an index needs the hypopg extension in this database, or --allow-ddl to "
                            "create each candidate inside a transaction that is rolled back (it blocks writes to "
                            "the table while the index builds)")
        return _advise(conn, statement, hypothetical, min_saving, named)


def _advise(conn: psycopg.Connection[Any], statement: str, hypothetical: bool, min_saving: float,
            named: bool) -> Advice:
    analyze, note = _may_execute(conn, statement, named)
    advice = Advice(statement, notes=[note] if note else [])
    try:
        before = explain(conn, statement, analyze=analyze)
    except UserError as error:
        if not analyze:
            advice.notes.append(f"not advised: {error}")
            return advice
        advice.notes.append(f"measured by plan only, its execution failed: {error}")
        analyze = False
        try:
            before = explain(conn, statement, analyze=False)
        except UserError as again:
            advice.notes.append(f"not advised: {again}")
            return advice
    advice.analyzed = analyze
    trigram_schema = _extension_schema(conn, "pg_trgm")
    for candidate in candidates(before):
        placed = _place(conn, candidate, trigram_schema)
        if isinstance(placed, str):
            advice.notes.append(placed)
            continue
        advice.candidates.append(_measure(conn, statement, placed, before, hypothetical, analyze, min_saving))
    return advice


def top_statements(dsn: str, count: int) -> list[str]:
    """The costliest SELECTs pg_stat_statements recorded in this database."""
    with open_session(dsn, PURPOSE) as conn:
        if not _has_extension(conn, "pg_stat_statements"):
            raise UserError("no statement given and pg_stat_statements is not installed in this database")
        rows = conn.execute(f"""SELECT {MARKER} query FROM pg_stat_statements
            WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
            ORDER BY total_exec_time DESC LIMIT 200""").fetchall()
    chosen = [query for (query,) in rows if MARKER not in query and statement_kind(query) == "select"]
    return [query for query in chosen if is_read_only_select(query)][:count]
