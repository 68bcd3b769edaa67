"""Function or cast on an indexed column in a predicate

## What it is

A `WHERE` clause that wraps an indexed column in a function, a cast or arithmetic before
comparing it: `lower(email) = $1`, `created_at::date = $1`, `date(created_at) = $1`,
`id::text = $1`, `created_at + interval '1 day' > now()`. The column has an index, the query looks
like it should use it, and it does not: the predicate is not "sargable" (usable as a search
argument).

## Why it hurts

A B-tree on `email` stores the values of `email`. The planner can use it only for a clause of the
form `indexed_expression operator value`, where the expression is exactly what the index stores
and the operator belongs to the index's operator class. `lower(email)` is a different
expression, so the index does not match and the only path is a sequential scan that calls
`lower()` on every row. The same happens implicitly when a parameter's type forces a cast of the
column: a `bigint` column compared with a `numeric` value is cast to `numeric`. The planner also
has no statistics for the expression, so its row estimates fall back to defaults and can mislead
the rest of the plan.

## What you see under load

A lookup that should read a few rows (login by email, the messages of one day) scales with the
table and burns CPU on function calls. `EXPLAIN` shows a `Seq Scan` with
`Filter: ((created_at)::date = '2025-12-17'::date)` or `Filter: (lower(email) = 'bob@example.com'::text)`
although an index on the column exists; in `pg_stat_user_indexes` that index's `idx_scan` stays
flat while `seq_scan` and `seq_tup_read` climb in `pg_stat_user_tables`. `pg_stat_statements`
shows the query with high shared blocks per call for the few rows it returns.

## How pglab detects it

Static: a comparison whose column side is wrapped in a function or cast (`lower(col) = ...`,
`col::text = ...`, `date(col) = ...`) when the column is indexed and no expression index matches
that expression. Runtime: a `Seq Scan` on a table whose filtered column has an index, with the
column inside a function or cast in the Filter.

## The fix

Index the expression the query uses: `CREATE INDEX ... ON users (lower(email))`; the query must
use the same expression, and `ANALYZE` then gathers statistics on it too. Or normalise the data
so the predicate can use the bare column: store emails lower-cased (a check constraint or a
generated column), or use the `citext` type. Casts usually belong on the value, not the column:
`id = $1::bigint`, not `id::text = $1`. For dates, compare a range on the raw column,
`created_at >= $1 AND created_at < $1 + interval '1 day'`: an expression index on
`created_at::date` is refused for `timestamptz`, because that cast depends on the `TimeZone`
setting and is not immutable. A half-open range (`>=` the day, `<` the next day) uses the index the
column already has, and takes every instant of the day, which `BETWEEN` and `23:59:59` do not.

## Example

### Naive

{fix:setup}

{fix:naive}

### Fixed

{fix:migrate}

{fix:fixed}

## References

- https://www.postgresql.org/docs/current/indexes-expressional.html
- https://www.postgresql.org/docs/current/indexes-opclass.html
- https://www.postgresql.org/docs/current/sql-createindex.html
- https://www.postgresql.org/docs/current/citext.html
- https://www.postgresql.org/docs/current/monitoring-stats.html#MONITORING-PG-STAT-ALL-INDEXES-VIEW
"""

from pglab.lab.check import sqlnodes as n
from pglab.lab.check.shape import reads_a_table

CODE = "PGL006"
CATEGORY = "indexing"
STATIC_SIGNAL = "lower(col) = ..., col::text = ..., date(col) = ... with no matching expression index"
RUNTIME_SIGNAL = "Seq Scan although the filtered column is indexed"
FIX_HINT = "index the exact expression (ON users (lower(email))), or normalise the column"

# -- static rule ------------------------------------------------------------

COMPARISONS = frozenset({"=", "<", ">", "<=", ">=", "~~", "~~*"})


def _wrapped_column(node: object) -> tuple[str | None, str] | None:
    """The column inside `f(col, ...)` or `col::type`, when the expression wraps one."""
    kind, body = n.unwrap(node)
    if kind == "TypeCast":
        return n.column(body.get("arg"))
    if kind == "FuncCall" and not body.get("agg_star") and not body.get("over"):
        columns = [reference for reference in map(n.column, body.get("args", [])) if reference]
        others = [arg for arg in body.get("args", []) if not n.column(arg) and not n.is_value(arg)]
        return columns[0] if len(columns) == 1 and not others else None
    return None


def _check(where: object, tables: dict[str, str | None], ctx) -> None:
    if not (ctx.query.has("FuncCall") or ctx.query.has("TypeCast")):
        return
    for term in n.conjuncts(where):
        kind, expr = n.unwrap(term)
        if kind != "A_Expr" or not (n.operator(expr) in COMPARISONS or expr.get("kind") in ("AEXPR_IN",)):
            continue
        for side, other in ((expr.get("lexpr"), expr.get("rexpr")), (expr.get("rexpr"), expr.get("lexpr"))):
            reference = _wrapped_column(side)
            if reference is None or not n.is_value(other):
                continue
            table = ctx.schema.table(n.table_of(reference, tables))
            if table is None or reference[1] not in table.columns:
                continue
            wanted = n.canonical(side)
            if any(wanted in index.keys for index in table.indexes.values()):
                continue
            plain = " although the column has an index" if table.leads(reference[1]) else ""
            ctx.report(side, f"a function or cast wraps {table.name}.{reference[1]}{plain}: no index on the bare "
                             "column can serve the comparison, and no expression index matches")


SQL_GATES = {"SelectStmt": reads_a_table}  # the walk hands SelectStmt nodes only of statements with a FROM


def check_sql_SelectStmt(node: dict, ctx) -> None:
    if ctx.schema:
        _check(node.get("whereClause"), n.range_tables(node.get("fromClause")), ctx)


def check_sql_UpdateStmt(node: dict, ctx) -> None:
    if ctx.schema:
        _check(node.get("whereClause"), n.range_tables([{"RangeVar": node.get("relation", {})}]), ctx)


def check_sql_DeleteStmt(node: dict, ctx) -> None:
    if ctx.schema:
        _check(node.get("whereClause"), n.range_tables([{"RangeVar": node.get("relation", {})}]), ctx)
