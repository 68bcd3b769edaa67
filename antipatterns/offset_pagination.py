"""Deep pagination with OFFSET

## What it is

Paging through a list with `LIMIT 50 OFFSET $2`, where the offset is the page number times the
page size. Page 1 is fast; page 2,000 of a long conversation history (or a crawler, an infinite
scroll, an "export everything" loop walking all pages) makes the database produce 100,050 rows
in order to return the last 50.

## Why it hurts

`OFFSET` is not a seek. The `Limit` node pulls rows from its child and throws the first `OFFSET`
of them away, so the child has to produce offset + limit rows in order: with a perfect index that
is offset + limit index entries, each checked for visibility in the visibility map or the heap;
without one it is a full scan and a sort of all matching rows on every page. A page costs time
proportional to its depth, and walking all N rows page by page costs O(N^2 / page size). A large
offset can also tip the planner from an ordered index scan to scan-and-sort. Offsets also give
wrong pages under writes: a message inserted or deleted between two requests shifts every later
row, so the client sees duplicates or skips rows.

## What you see under load

Latency that climbs linearly with the page number, and a few deep-paging clients (bots, exports)
consuming most of the database time. In `pg_stat_statements` the `rows / calls` stays at the page
size while `shared_blks_hit + shared_blks_read` per call and `mean_exec_time` keep rising.
`EXPLAIN (ANALYZE, BUFFERS)` shows `Limit (actual rows=50)` over an `Index Scan` (or `Sort`)
whose actual rows are offset + 50.

## How pglab detects it

Static: `OFFSET` whose value is not a small constant: a parameter, an expression or a large
literal. Runtime: rows read proportional to the offset: the child of a `Limit` node produces far
more rows than the `Limit` returns, and buffers per call grow while rows per call stay flat.

## The fix

Use keyset (seek) pagination: instead of a page number, the client sends back the sort key of
the last row it received, and the query asks for rows strictly after it with a row comparison
`(created_at, id) < ($2, $3)`. The sort key must be unique, hence the `id` tie-breaker, and an
index on `(conversation_id, created_at, id)` lets the B-tree descend straight to the cursor
position and read just one page of entries, at any depth; it is scanned backwards for `DESC`.
An index on `(conversation_id, created_at)` does nearly as well when timestamps rarely tie: it
seeks on `created_at` and checks the `id` tie-breaker on the few rows that share one.
Results stay stable under concurrent inserts. The trade-off is no jumping to page 2,000 directly;
if the product needs page numbers, cap the maximum offset.

## Example

The lab's chat service runs exactly this code (`pglab lab run offset_pagination`); its SQL is the
fix file's. Both sides answer the same pages; the cursor in the `Link: rel="next"` header is
opaque to the client: an offset on the naive side, the last message's id on the fixed side.

### Naive

{fix:naive}

{path:naive}

### Fixed

{fix:fixed}

{path:fixed}

## References

- https://www.postgresql.org/docs/current/queries-limit.html
- https://www.postgresql.org/docs/current/functions-comparisons.html#ROW-WISE-COMPARISON
- https://www.postgresql.org/docs/current/indexes-ordering.html
- https://www.postgresql.org/docs/current/indexes-multicolumn.html
- https://www.postgresql.org/docs/current/using-explain.html
"""

from pglab.lab.check import sqlnodes as n
from pglab.lab.check.shape import keyset_hint, list_lookup, unique_lookup

CODE = "PGL005"
CATEGORY = "query-shape"
STATIC_SIGNAL = "OFFSET with a non-constant or large value"
RUNTIME_SIGNAL = "rows read grow with the offset: Limit child returns offset + limit rows"
FIX_HINT = "replace OFFSET with keyset pagination: WHERE (created_at, id) < ($2, $3) ... LIMIT n"

# -- static rule ------------------------------------------------------------

LARGE_OFFSET = 1000  # a constant OFFSET below this is a fixed, cheap skip (a "top 10 after the first 20")


def _has_offset(text: str) -> bool:
    """Whether a statement's printed tree has an OFFSET anywhere (most SELECTs have none)."""
    return '"limitOffset"' in text


SQL_GATES = {"SelectStmt": _has_offset}  # the walk hands SelectStmt nodes only of statements with an OFFSET


def check_sql_SelectStmt(node: dict, ctx) -> None:
    offset = node.get("limitOffset")
    if not offset:
        return
    value = n.constant(offset)
    if isinstance(value, int | float) and value < LARGE_OFFSET:
        return
    if unique_lookup(node, ctx.schema, lists=True) or list_lookup(node, ctx.schema):
        return  # paging through the results for the caller's list of keys: bounded, never deep
    what = f"OFFSET {value}" if value is not None else "OFFSET from a parameter"
    ctx.report(offset, f"{what}: the server reads and discards every skipped row, so deep pages cost as much "
                       "as everything before them",
               hint=keyset_hint(node, ctx.schema, action="replace OFFSET with a keyset cursor"))
