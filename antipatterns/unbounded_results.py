"""List query with no LIMIT

## What it is

A query that returns a list (messages of a conversation, a user's notifications) with no `LIMIT`,
so the size of every response is set by the data, not by the code. In development a conversation
has forty messages; in production the busiest one has two hundred thousand, and every request for
it fetches, sends and decodes all of them.

## Why it hurts

Without a `LIMIT` the planner optimises for total cost, so it prefers plans that are cheapest for
the whole result (a sequential or bitmap scan followed by a full Sort) over an ordered index scan
that could stop early. The executor then produces every matching row, sorting all of them when
there is an `ORDER BY` (spilling to temporary files when they exceed `work_mem`), and the backend
serialises each row onto the socket. A normal client-side cursor in psycopg buffers the whole
result in libpq memory before `execute()` returns, then builds a Python object per row on
`fetchall()`. The connection is held for the full transfer, so a few large responses tie up the
pool, and the cost of a request keeps growing as the tables grow.

## What you see under load

Latency and response size that grow with the age of the account, not with traffic, and a p99
made of the biggest conversations. `pg_stat_statements` shows a high and growing `rows / calls`
for the query, with `temp_blks_written` when the sort spills; `EXPLAIN ANALYZE` shows a `Sort`
with `Sort Method: external merge  Disk: ...` over the whole result. Backends streaming a result
to a slow reader wait in `pg_stat_activity` with wait event `ClientWrite`. On the application
side: memory spikes, long garbage-collection pauses and large response bodies.

## How pglab detects it

Static: a `SELECT` that can return many rows with no `LIMIT` (or `FETCH FIRST`): not a lookup by
a primary or unique key, not an aggregate without `GROUP BY`. Runtime: a statement whose rows
per call (`rows / calls` in `pg_stat_statements`) is high, and growing between snapshots.

## The fix

Bound every list: `LIMIT` a page size and hand the client a cursor to the next page, using keyset
pagination (see offset_pagination): remember the sort key of the last row returned and ask for
rows after it. Make the sort key unique (add `id` as a tie-breaker) and index it behind the
equality filter, `(conversation_id, created_at, id)`, so each page is an index scan that stops
after the page size, however long the conversation. Exports that really need every row belong
in a background job using `COPY` or a server-side cursor, not in a request.

## Example

The lab's chat service runs exactly this code (`pglab lab run unbounded_results`); its SQL is the
fix file's. The page and its `Link: rel="next"` cursor are the same on both sides: only where the
page is cut differs.

### Naive

{fix:naive}

{path:naive}

### Fixed

{fix:migrate}

{fix:fixed}

{path:fixed}

## References

- https://www.postgresql.org/docs/current/queries-limit.html
- https://www.postgresql.org/docs/current/functions-comparisons.html#ROW-WISE-COMPARISON
- https://www.postgresql.org/docs/current/pgstatstatements.html
- https://www.postgresql.org/docs/current/runtime-config-resource.html#GUC-WORK-MEM
- https://www.psycopg.org/psycopg3/docs/advanced/cursors.html
"""

from pglab.lab.check import sqlnodes as n
from pglab.lab.check.flow import single_row
from pglab.lab.check.shape import (
    aiosql_single_row,
    bounded_groups,
    driven_by_input,
    is_aggregate,
    keyset_hint,
    list_lookup,
    reads_a_table,
    reads_only_system_catalogs,
    unique_lookup,
)

CODE = "PGL004"
CATEGORY = "query-shape"
STATIC_SIGNAL = "multi-row SELECT without LIMIT (not a unique-key lookup, not an aggregate)"
RUNTIME_SIGNAL = "high rows per call (rows / calls) in pg_stat_statements"
FIX_HINT = "add a LIMIT and page with a keyset cursor: WHERE (created_at, id) < ($2, $3) ... LIMIT n"
# Off by default in test code and benchmark scripts (`[tool.pglab] default-per-file-ignores`): why.
OFF_IN_TEST_CODE = "a test reads back the handful of fixture rows it seeded"

# -- static rule ------------------------------------------------------------

QUERY_KINDS = frozenset({"SelectStmt"})  # check_query is called only for these statements
QUERY_GATE = reads_a_table  # ... and only for those with a FROM


def check_query(query, ctx) -> None:
    if query.kind != "SelectStmt":
        return
    body = query.body
    if body.get("op", "SETOP_NONE") != "SETOP_NONE":
        return
    if body.get("limitCount") or body.get("intoClause") or query.unseen:  # unseen: its WHERE may be a variable
        return
    if not any(kind in ("RangeVar", "JoinExpr") for kind, _ in map(n.unwrap, body.get("fromClause", []))):
        return
    if (not query.json or query.has("FuncCall")) and is_aggregate(body):  # no call: no aggregate, no walk
        return
    if unique_lookup(body, ctx.schema, lists=True) or bounded_groups(body, ctx.schema) \
            or driven_by_input(body) or list_lookup(body, ctx.schema) \
            or reads_only_system_catalogs(body):
        return
    if query.call is None and aiosql_single_row(query, ctx.texts.get(query.path, "")):
        return
    if query.call is not None and (single_row(query.call) or query.call.method in ("executemany", "copy")):
        return
    ctx.report(None, "multi-row SELECT without LIMIT: the rows returned, the time to send "
                     "them and the memory to hold them all grow with the table",
               hint=keyset_hint(body, ctx.schema, action="add a LIMIT and page with a keyset cursor"))
