"""Correlated scalar subquery in the select list

## What it is

A scalar subquery in the `SELECT` list that refers to a column of the outer row, such as a
running total of tokens computed per message by summing every earlier message of the same
conversation. It reads naturally and returns the right answer, but it is evaluated once for every
row the outer query produces, and each evaluation rescans rows the previous one already read.

## Why it hurts

The planner does not turn a correlated scalar subquery in the target list into a join (it pulls
up `EXISTS` and `IN` in `WHERE` into semi-joins, not this). It plans it as a `SubPlan` whose
outer columns are passed in as parameters, and the executor re-runs that plan for every outer
row. For a running total each run reads all earlier rows of the conversation, so N messages cost
N(N+1)/2 row visits, 50 million for 10,000 messages, even when an index on
`(conversation_id, created_at)` serves every run; without one, each run scans the whole table.
Results are not cached between runs, so the same pages are read again and again.

## What you see under load

Latency that grows with the square of the data: ten times more messages in a conversation makes
its page roughly a hundred times slower, and the largest conversations own the p99. The backend
is `active` in `pg_stat_activity` with no wait event (it is on CPU). In `pg_stat_statements` the
query has a high `mean_exec_time` and far more `shared_blks_hit` per call than rows returned.
`EXPLAIN (ANALYZE, BUFFERS)` shows `SubPlan 1` under the outer node, its child nodes reporting
`loops=` equal to the number of outer rows.

## How pglab detects it

Static: a scalar subquery in the select list whose `WHERE` references a column of a table in the
outer query's `FROM`. Runtime: a `SubPlan` whose `loops` is close to the number of rows of the
outer node it hangs from.

## The fix

Compute the value in one pass. A running total is a window function: one `WindowAgg` over input
sorted by `created_at` (by a Sort or an index) that carries the sum forward row by row. With
`ORDER BY` and no frame clause the frame is `RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW`,
which includes rows with the same `created_at`, exactly like `<=` in the subquery. A window sees
only rows that passed `WHERE`: to page through the result, compute it in a subquery and filter
outside. A per-row aggregate of another table (message count per conversation) becomes a join
against that table aggregated once with `GROUP BY`.

## Example

### Naive

{fix:naive}

### Fixed

{fix:migrate}

{fix:fixed}

## References

- https://www.postgresql.org/docs/current/tutorial-window.html
- https://www.postgresql.org/docs/current/sql-expressions.html#SYNTAX-WINDOW-FUNCTIONS
- https://www.postgresql.org/docs/current/sql-expressions.html#SQL-SYNTAX-SCALAR-SUBQUERIES
- https://www.postgresql.org/docs/current/using-explain.html
"""

from pglab.lab.check import sqlnodes as n
from pglab.lab.check.rewrite import closing_paren, splice
from pglab.lab.check.shape import is_aggregate, reads_a_table

CODE = "PGL002"
CATEGORY = "query-shape"
STATIC_SIGNAL = "scalar subquery in the select list that references a column of the outer row"
RUNTIME_SIGNAL = "SubPlan whose loops are about equal to the rows of its outer node"
FIX_HINT = "rewrite as a window function (running totals) or a join to a GROUP BY (per-row aggregates)"

# -- static rule ------------------------------------------------------------

def _outer_references(sub: dict, outer: dict[str, str | None]) -> list[tuple[str, str]]:
    """(qualifier, column) references inside `sub` that name a table of the outer query."""
    inner = n.range_tables(sub.get("fromClause"))
    found = []
    for kind, body in n.walk({"SelectStmt": sub}):
        if kind == "ColumnRef":
            reference = n.column({kind: body})
            if reference and reference[0] in outer and reference[0] not in inner:
                found.append((reference[0], reference[1]))
    return found


def _window_rewrite(ctx, sublink: dict, sub: dict, outer: dict[str, str | None]) -> str | None:
    """A running total (`SELECT sum(x) FROM t t2 WHERE t2.k <= t.k [AND t2.p = t.p]`) as a window
    function over the outer row: `sum(t.x) OVER (PARTITION BY t.p ORDER BY t.k)`."""
    targets = sub.get("targetList", [])
    inner = n.range_tables(sub.get("fromClause"))
    if len(targets) != 1 or len(inner) != 1:
        return None
    call = n.unwrap(n.unwrap(targets[0])[1].get("val"))[1]
    name = (n.strings(call.get("funcname")) or [""])[-1]
    if name not in ("sum", "count") or call.get("over"):
        return None
    inner_alias, inner_table = next(iter(inner.items()))
    outer_alias = next((alias for alias, table in outer.items() if table == inner_table), None)
    if outer_alias is None:
        return None
    order, partition = None, []
    for term in n.conjuncts(sub.get("whereClause")):
        kind, expr = n.unwrap(term)
        left, right = n.column(expr.get("lexpr")), n.column(expr.get("rexpr"))
        if kind != "A_Expr" or not left or not right or left[1] != right[1]:
            return None
        operator = n.operator(expr)
        if left[0] == outer_alias:
            left, right = right, left
            operator = {"<=": ">=", ">=": "<="}.get(operator, operator)
        if left[0] not in (inner_alias, None) or right[0] != outer_alias:
            return None
        if operator == "=":
            partition.append(right[1])
        elif operator == "<=" and order is None:
            order = right[1]
        else:
            return None
    if order is None:
        return None
    arguments = "*" if call.get("agg_star") else ", ".join(
        f"{outer_alias}.{ref[1]}" for ref in map(n.column, call.get("args", [])) if ref)
    if not arguments:
        return None
    over = (f"PARTITION BY {', '.join(f'{outer_alias}.{column}' for column in partition)} " if partition else "")
    window = f"{name}({arguments}) OVER ({over}ORDER BY {outer_alias}.{order})"
    start = ctx.query.text_at(n.location({"SubLink": sublink}))
    end = closing_paren(ctx.query.sql, start)
    return splice(ctx.query, [(start, end, window)]) if end else None


def _key_lookup(sub: dict, outer: dict[str, str | None], schema) -> bool:
    """`(SELECT name FROM users WHERE id = a.author_id)`: equality on a unique key of the one inner
    table (its `id` when the schema does not know it) and no aggregate: one index probe per row
    returned, as a join would do, not a scan per row."""
    inner = n.range_tables(sub.get("fromClause"))
    if len(set(inner.values())) != 1 or sub.get("groupClause") or is_aggregate(sub):
        return False
    table_name = next(iter(inner.values()))
    pinned = set()
    for term in n.conjuncts(sub.get("whereClause")):
        kind, expr = n.unwrap(term)
        if kind != "A_Expr" or expr.get("kind") != "AEXPR_OP" or n.operator(expr) != "=":
            continue
        for side, other in ((expr.get("lexpr"), expr.get("rexpr")), (expr.get("rexpr"), expr.get("lexpr"))):
            mine, theirs = n.column(side), n.column(other)
            if mine and mine[0] in (None, *inner) and (n.is_value(other) or (theirs and theirs[0] in outer
                                                                                and theirs[0] not in inner)):
                pinned.add(mine[1])
    table = schema.table(table_name)
    if table is None or not table.unique_keys():
        return "id" in pinned
    return any(key and set(key) <= pinned for key in table.unique_keys())


def _walks_own_value(sub: dict, outer: dict[str, str | None]) -> bool:
    """`(SELECT ... FROM jsonb_array_elements(t.tags) ...)`: the subquery reads the outer row's own
    value (an array, a jsonb document), not a table: its cost follows that value, not the table."""
    for item in sub.get("fromClause", []):
        for kind, body in n.walk(item):
            if kind == "RangeFunction":
                references = [n.column({"ColumnRef": ref}) for key, ref in n.walk(body) if key == "ColumnRef"]
                if any(ref and ref[0] in outer for ref in references):
                    return True
    return False


SQL_GATES = {"SelectStmt": reads_a_table}  # the walk hands SelectStmt nodes only of statements with a FROM


def check_sql_SelectStmt(node: dict, ctx) -> None:
    if not ctx.query.has("SubLink"):
        return
    outer = n.range_tables(node.get("fromClause"))
    if not outer:
        return
    for target in node.get("targetList", []):
        for kind, body in n.walk(n.unwrap(target)[1].get("val")):
            if kind != "SubLink" or body.get("subLinkType") != "EXPR_SUBLINK":
                continue
            sub = n.unwrap(body.get("subselect"))[1]
            references = _outer_references(sub, outer)
            if references and not _key_lookup(sub, outer, ctx.schema) and not _walks_own_value(sub, outer):
                qualifier, column = references[0]
                ctx.report({"SubLink": body},
                           f"scalar subquery in the select list depends on the outer row ({qualifier}.{column}): "
                           "it runs once per row returned, O(N^2) as the table grows",
                           rewrite=_window_rewrite(ctx, body, sub, outer))
