"""Missing index on a filter or join column

## What it is

A query filters or joins on a column that no index can serve: no index has that column as its
first (leading) key. Postgres has no choice but to read the whole table and test every row.
It is the most common performance bug in application code, because on a developer's laptop the
table holds a few hundred rows and every plan is fast.

## Why it hurts

Without an index the planner's only access path is a sequential scan: every heap page of the
table is read (from shared buffers if you are lucky, from disk if not) and the `WHERE` clause is
evaluated for every tuple, visible or dead. The cost grows linearly with the table, not with the
result: a lookup that returns one row out of ten million reads ten million rows. Each such scan
also pushes useful pages out of shared buffers, slowing every other query. A B-tree index turns
the same lookup into a descent of three or four pages. A multi-column index only helps when the
filtered column is its leading key; an index on `(a, b)` does not serve `WHERE b = $1`.

## What you see under load

Latency that grows with the data, not with the traffic, then collapses under concurrency: each
request burns a CPU core for the length of a full scan, so throughput flattens at roughly
`cores / scan time` and p99 climbs without bound. `pg_stat_user_tables.seq_tup_read` grows by the
table size per call; `EXPLAIN (ANALYZE, BUFFERS)` shows a `Seq Scan` with a `Filter` and a huge
`Rows Removed by Filter`, and `shared read` buffers once the table outgrows memory.

## How pglab detects it

Static: a column used in a `WHERE` equality/range or a `JOIN ... ON` condition that is not the
leading key of any index, on a table whose schema pglab knows (from migrations, DDL in the
checked code, or the live catalog with `--dsn`). Runtime: a `Seq Scan` (or an index scan with a
heavy `Filter`) on a table of at least ~10k rows whose Filter removes most of the rows read
(warn at 50 %, error at 90 %, and at least 1,000 rows removed across loops), and a growing
`seq_tup_read` between two snapshots of `pg_stat_user_tables`.

## The fix

Create a B-tree index led by the filtered column, concurrently so writes are not blocked while
it builds. When a query filters on several columns, put the equality columns first and the range
or sort column last. Check the plan afterwards: the `Seq Scan` becomes an `Index Scan` or a
`Bitmap Heap Scan`, and rows read drop to roughly rows returned.

## Example

### Naive

{fix:naive}

### Fixed

{fix:migrate}

{fix:fixed}

## References

- https://www.postgresql.org/docs/current/indexes-intro.html
- https://www.postgresql.org/docs/current/indexes-multicolumn.html
- https://www.postgresql.org/docs/current/sql-createindex.html#SQL-CREATEINDEX-CONCURRENTLY
- https://www.postgresql.org/docs/current/using-explain.html
- https://www.postgresql.org/docs/current/monitoring-stats.html#MONITORING-PG-STAT-ALL-TABLES-VIEW
"""

from pglab.lab.check import sqlnodes as n
from pglab.lab.check.ddlorder import is_migration
from pglab.lab.check.shape import reads_a_table

CODE = "PGL001"
CATEGORY = "indexing"
STATIC_SIGNAL = "predicate or join column that is not the leading key of any index"
RUNTIME_SIGNAL = "Seq Scan whose Filter discards most rows of a large table; seq_tup_read growth"
FIX_HINT = "CREATE INDEX CONCURRENTLY on the filtered column (equality columns first, then range/sort)"

# -- static rule ------------------------------------------------------------

RANGE_OPERATORS = frozenset({"=", "<", ">", "<=", ">="})


def _filters(where: object, tables: dict[str, str | None]) -> dict[str, list[tuple[str, dict]]]:
    """Columns compared with a value (a constant or a parameter), grouped by table."""
    found: dict[str, list[tuple[str, dict]]] = {}
    for term in n.conjuncts(where):
        kind, expr = n.unwrap(term)
        if kind != "A_Expr" or not (expr.get("kind") in ("AEXPR_IN", "AEXPR_BETWEEN")
                                    or (expr.get("kind") == "AEXPR_OP" and n.operator(expr) in RANGE_OPERATORS)):
            continue
        for side, other in ((expr.get("lexpr"), expr.get("rexpr")), (expr.get("rexpr"), expr.get("lexpr"))):
            reference = n.column(side)
            if reference and n.is_value(other):
                table = n.table_of(reference, tables)
                if table:
                    found.setdefault(table, []).append((reference[1], side))
    return found


def _check(body: dict, tables: dict[str, str | None], ctx) -> None:
    for table_name, columns in _filters(body.get("whereClause"), tables).items():
        table = ctx.schema.table(table_name)
        known = [(column, node) for column, node in columns if table and column in table.columns]
        if table is None or any(table.leads(column) for column, _ in known):
            continue
        # a boolean or enum column picks a large share of the table whatever its index: not the cause
        known = [(column, node) for column, node in known if not ctx.schema.few_values(table_name, column)]
        if not known:
            continue
        column, node = known[0]
        ctx.report(node, f"{table.name}.{column} is filtered on but leads no index: every call reads the whole "
                         f"{table.name} table")
    for qual in n.join_quals(body.get("fromClause")):
        pinned = _pinned(qual, tables)
        for term in n.conjuncts(qual):
            kind, expr = n.unwrap(term)
            if kind != "A_Expr" or n.operator(expr) != "=":
                continue
            sides = [(n.column(expr.get(side)), expr.get(side)) for side in ("lexpr", "rexpr")]
            resolved = [(ctx.schema.table(n.table_of(ref, tables)), ref, node) for ref, node in sides if ref]
            if len(resolved) != 2 or any(table is None or ref[1] not in table.columns for table, ref, _ in resolved):
                continue
            if not any(_served(table, ref[1], pinned.get(table.name, set())) for table, ref, _ in resolved):
                table, ref, node = resolved[1]
                ctx.report(node, f"join on {resolved[0][0].name}.{resolved[0][1][1]} = {table.name}.{ref[1]} "
                                 f"with an index on neither side: each join scans a whole table")


def _pinned(qual: object, tables: dict[str, str | None]) -> dict[str, set[str]]:
    """Columns a join condition compares with something that is not another column (a parameter,
    a constant, an uncorrelated subquery): fixed while the join runs, so an index may lead with them."""
    pinned: dict[str, set[str]] = {}
    for term in n.conjuncts(qual):
        kind, expr = n.unwrap(term)
        if kind != "A_Expr" or n.operator(expr) != "=":
            continue
        for side, other in ((expr.get("lexpr"), expr.get("rexpr")), (expr.get("rexpr"), expr.get("lexpr"))):
            reference = n.column(side)
            table = n.table_of(reference, tables) if reference else None
            if reference and table and n.column(other) is None:
                pinned.setdefault(table, set()).add(reference[1])
    return pinned


def _served(table, column: str, pinned: set[str]) -> bool:
    """Some B-tree index reaches `column` with every key before it pinned: `(follower_id,
    following_id)` serves a join on following_id once follower_id is fixed."""
    for index in table.btree_indexes():
        for position, key in enumerate(index.keys):
            if key == column and not any(index.expressions[:position + 1]) and set(index.keys[:position]) <= pinned:
                return True
    return False


def _hot(ctx) -> bool:
    """A statement that can run often: there is a schema to judge it by, and it is not a data fix
    inside a migration script (that runs once, at deploy time)."""
    return bool(ctx.schema) and not (ctx.query.call is None and is_migration(ctx.query.path))


SQL_GATES = {"SelectStmt": reads_a_table}  # the walk hands SelectStmt nodes only of statements with a FROM


def check_sql_SelectStmt(node: dict, ctx) -> None:
    if _hot(ctx):
        _check(node, n.range_tables(node.get("fromClause")), ctx)


def check_sql_UpdateStmt(node: dict, ctx) -> None:
    if _hot(ctx):
        tables = n.range_tables([{"RangeVar": node.get("relation", {})}] + list(node.get("fromClause", [])))
        _check(node, tables, ctx)


def check_sql_DeleteStmt(node: dict, ctx) -> None:
    if _hot(ctx):
        tables = n.range_tables([{"RangeVar": node.get("relation", {})}] + list(node.get("usingClause", [])))
        _check(node, tables, ctx)
