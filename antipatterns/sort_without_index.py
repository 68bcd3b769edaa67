"""ORDER BY ... LIMIT that sorts every matching row

## What it is

A "latest N" query, `WHERE conversation_id = $1 ORDER BY created_at DESC LIMIT 50`, where no
index delivers the rows already in that order after the filter. It returns 50 rows, but to know
which 50 are the newest Postgres has to read and sort every message of the conversation first.

## Why it hurts

With only an index on `conversation_id` (or none), the executor fetches all M matching rows and
feeds them to a `Sort` node. Because of the `LIMIT`, the sort is bounded: a top-N heapsort that
keeps only 50 tuples in memory, so it is cheap in memory, but every matching row is still read
from the heap and compared, O(M log 50). Latency is proportional to the size of the
conversation, not to the page. Without the `LIMIT`, or with a big one, it becomes a full sort
that spills to temporary files once it exceeds `work_mem`. A B-tree on `(conversation_id,
created_at)` holds the entries of one conversation in `created_at` order, so the executor can
read them (backwards for `DESC`) and stop after 50. An index on `created_at` alone is a trap:
the planner may walk it backwards filtering on `conversation_id`, fast for a busy conversation
and close to a full index scan for a quiet one.

## What you see under load

Latency of "open a conversation" that grows with the conversation, with the biggest ones in the
p99. `EXPLAIN (ANALYZE, BUFFERS)` shows `Limit` over `Sort` (`Sort Key: created_at DESC`,
`Sort Method: top-N heapsort`) over a `Bitmap Heap Scan` or `Seq Scan` whose actual rows are far
above the limit. `pg_stat_statements` shows `rows / calls` at the page size while shared blocks
per call and `mean_exec_time` grow; unbounded variants add `temp_blks_written` and
`Sort Method: external merge`.

## How pglab detects it

Static: `ORDER BY` with `LIMIT` where no index has the equality-filter columns followed by the
sort columns (in matching or fully reversed directions). Runtime: a `Sort` node (top-N heapsort)
under a `Limit` whose input has many more rows than the limit returns.

## The fix

Create a composite index: the equality-filter columns first, then the sort column(s), so one
index range is already in output order and the plan becomes `Limit` over an `Index Scan
Backward` with no `Sort` node. A B-tree can be read in either direction, so `(conversation_id,
created_at)` serves both `ASC` and `DESC`; a mixed order (`a ASC, b DESC`) needs the index
declared with those directions. Add a unique tie-breaker (`id`) to the sort and the index if
pages must be deterministic (see offset_pagination). If an index covers only a prefix of the
sort keys, Postgres 13+ can use an `Incremental Sort`. The old single-column index on
`conversation_id` is now redundant (see write_amplification).

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
from pglab.lab.check.shape import equality_columns, unique_lookup

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
    wanted = ", ".join([*sorted(equal), *order])
    ctx.report(sort[0], f"ORDER BY {', '.join(order)} LIMIT with no index on {table.name} ({wanted}): every "
                        "matching row is read and sorted to return the first few",
               hint=f"CREATE INDEX ON {table.name} ({wanted})")
