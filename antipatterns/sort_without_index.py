"""ORDER BY ... LIMIT that sorts every matching row

## What it is

A "newest N" query, `WHERE owner_id = $1 ORDER BY created_at DESC, id DESC LIMIT 20`, where no
index delivers the filtered rows already in that order. It returns 20 rows, but to know which 20
are the newest Postgres has to read and sort every row that matches the filter first. The usual
culprit is an index on the filter column alone (the foreign-key index on `owner_id`): it finds
the rows, not their order.

## Why it hurts

With only an index on `owner_id` (or none), the executor fetches all M matching rows and feeds
them to a `Sort` node. Because of the `LIMIT`, the sort is bounded: a top-N heapsort that keeps
only 20 tuples in memory, so it is cheap in memory, but every matching row is still read from the
heap and compared, O(M log 20). Latency is proportional to how many rows match, not to the page:
an owner with five conversations never notices, an integration account with forty thousand pays
for all of them on every page. Without the `LIMIT`, or with a big one, it becomes a full sort
that spills to temporary files once it exceeds `work_mem`. A B-tree on `(owner_id, created_at,
id)` holds one owner's entries in order, so the executor reads them backwards for `DESC` and
stops after 20. An index on the sort column alone is a trap: the planner may walk it backwards
filtering on the owner, fast for a busy owner and close to a full index scan for a quiet one.

## What you see under load

Latency of "open the inbox" that grows with the owner's history, with the biggest owners in the
p99. `EXPLAIN (ANALYZE, BUFFERS)` shows `Limit` over `Sort` (`Sort Key: created_at DESC, id
DESC`, `Sort Method: top-N heapsort`) over a `Bitmap Heap Scan` or `Seq Scan` whose actual rows
are far above the limit. `pg_stat_statements` shows `rows / calls` at the page size while shared
blocks per call and `mean_exec_time` grow; unbounded variants add `temp_blks_written` and
`Sort Method: external merge`.

## How pglab detects it

Static: `ORDER BY` with `LIMIT` where no index has the equality-filter columns followed by the
sort columns (in matching or fully reversed directions). Runtime: a `Sort` node (top-N heapsort)
under a `Limit`, fed by a table scan of many more rows than the limit returns.

## The fix

Create a composite index: the equality-filter columns first, then the sort column(s), so one
index range is already in output order and the plan becomes `Limit` over an `Index Scan
Backward` with no `Sort` node. A B-tree can be read in either direction, so `(owner_id,
created_at, id)` serves both `created_at DESC, id DESC` and `created_at, id`; a mixed order
(`created_at DESC, id`) needs the index declared with those directions. Keep a unique
tie-breaker (`id`) in the sort and the index so pages are deterministic (see offset_pagination).
If an index covers only a prefix of the sort keys, Postgres 13+ can use an `Incremental Sort`.
The old single-column index on `owner_id` is now redundant for reads (the composite one serves
the foreign key too; see write_amplification).

## Example

### Naive

{fix:naive}

### Fixed

{fix:migrate}

{fix:fixed}

## References

- https://www.postgresql.org/docs/current/indexes-ordering.html
- https://www.postgresql.org/docs/current/indexes-multicolumn.html
- https://www.postgresql.org/docs/current/queries-limit.html
- https://www.postgresql.org/docs/current/using-explain.html
- https://www.postgresql.org/docs/current/runtime-config-resource.html#GUC-WORK-MEM
"""

from pglab.lab.check import sqlnodes as n
from pglab.lab.check.shape import duplicate_lookup, equality_columns, reads_a_table, unique_lookup

CODE = "PGL009"
CATEGORY = "indexing"
STATIC_SIGNAL = "ORDER BY + LIMIT where no index covers the filter columns then the sort columns"
RUNTIME_SIGNAL = "Sort (top-N heapsort) under a Limit over many more rows than returned"
FIX_HINT = "add a composite index (filter columns, sort column), e.g. (conversation_id, created_at)"

# -- static rule ------------------------------------------------------------

def _covered(keys: tuple[str, ...], equal: set[str], order: list[str]) -> bool:
    """An index serves `WHERE equal... ORDER BY order LIMIT k` when its keys are some of the equality
    columns first, then the sort columns in order."""
    for start in range(len(keys) + 1):
        if not set(keys[:start]) <= equal:
            break
        if list(keys[start : start + len(order)]) == order:
            return True
    return False


SQL_GATES = {"SelectStmt": reads_a_table}  # the walk hands SelectStmt nodes only of statements with a FROM


def check_sql_SelectStmt(node: dict, ctx) -> None:
    sort = node.get("sortClause")
    if not sort or not node.get("limitCount") or not ctx.schema:
        return
    tables = n.range_tables(node.get("fromClause"))
    references = [n.column(n.unwrap(item)[1].get("node")) for item in sort]
    if not all(references):
        return
    owners = {n.table_of(reference, tables) for reference in references}
    if len(owners) != 1 or unique_lookup(node, ctx.schema):
        return
    table = ctx.schema.table(owners.pop())
    order = [reference[1] for reference in references]
    if table is None or not all(column in table.columns for column in order):
        return
    equal = equality_columns(node.get("whereClause"), tables).get(table.name, set())
    if any(_covered(index.keys, equal, order) for index in table.btree_indexes()):
        return
    if duplicate_lookup(node, table, tables, order):
        return
    wanted = ", ".join([*sorted(equal), *order])
    ctx.report(sort[0], f"ORDER BY {', '.join(order)} LIMIT with no index on {table.name} ({wanted}): every "
                        "matching row is read and sorted to return the first few",
               hint=f"CREATE INDEX ON {table.name} ({wanted})")
