"""SELECT * dragging wide columns into list queries

## What it is

A list query fetches every column (`SELECT *`, `t.*`, or an ORM loading whole rows) when the
page shows only a few. In a chat service the wide columns are a notification's `payload jsonb`
(a snapshot of the message that triggered it), a message's `metadata` or attachments: kilobytes
per row that the list view never displays, multiplied by every row of every page.

## Why it hurts

When a row would exceed about 2 kB, its largest values are compressed and, if it is still too
big, moved out of line into the table's TOAST relation in chunks of about 2 kB; the heap tuple
keeps only an 18-byte pointer. A query that never outputs those columns never touches them.
`SELECT *` makes the executor detoast every one: a lookup in the TOAST index and reads of
`pg_toast.pg_toast_<oid>` pages per out-of-line value, decompression (pglz or lz4) per
compressed value, conversion to the output format (jsonb to text is real work); then the bytes
cross the socket and the driver builds a Python object per value. The cost scales with bytes
returned, not rows. Wide rows also make Sort and Hash nodes fill `work_mem` and spill to disk
sooner, and they rule out an index-only scan: no index covers every column, so even a well
indexed list query must visit the heap for each row.

## What you see under load

Latency and CPU out of proportion to the row count: the plan looks cheap, yet
`pg_stat_statements` shows a high `mean_exec_time` and more `shared_blks_hit`/`shared_blks_read`
per call than the heap pages alone explain (the TOAST pages). Backends wait on `ClientWrite` in
`pg_stat_activity` while the driver drains large results; network egress and application CPU
rise with traffic. Beware the plan's `width=`: it is the stored (compressed or TOAST-pointer)
width from `pg_stats`, so it understates. On PostgreSQL 17+, `EXPLAIN (ANALYZE, SERIALIZE)`
prints `Serialization: time=... output=...kB`, the real bytes sent; `EXPLAIN VERBOSE` shows
every column in the `Output:` line.

## How pglab detects it

Static: `SELECT *` (or `alias.*`), or an explicitly selected wide `jsonb`/`text`/`bytea` column,
in a multi-row list query; a single-row lookup by primary key is not flagged. Runtime: large
row width and bytes per call: the width of the plan's output rows times rows per call from
`pg_stat_statements`, and on 17+ the `Serialization` output measured by `EXPLAIN (ANALYZE,
SERIALIZE)`.

## The fix

Name the columns the endpoint actually renders. Fetch wide values only where they are shown,
usually the detail view of a single row. Derive short fields at write time (a title or preview
column) rather than extracting them from the big `jsonb` on every read: `payload->>'title'`
still detoasts the whole value. With narrow column lists, a covering index (`INCLUDE`) can
serve the list as an index-only scan.

## Example

### Naive

{fix:setup}

{fix:naive}

### Fixed

{fix:fixed}

## References

- https://www.postgresql.org/docs/current/storage-toast.html
- https://www.postgresql.org/docs/current/queries-select-lists.html
- https://www.postgresql.org/docs/current/sql-explain.html
- https://www.postgresql.org/docs/current/indexes-index-only-scans.html
- https://www.postgresql.org/docs/current/pgstatstatements.html
"""

import ast

from pglab.lab.check import sqlnodes as n
from pglab.lab.check.flow import single_row
from pglab.lab.check.shape import limited_to_one, reads_only_system_catalogs, unique_lookup

CODE = "PGL011"
CATEGORY = "query-shape"
STATIC_SIGNAL = "SELECT * (or a wide jsonb/text column) in a multi-row list query"
RUNTIME_SIGNAL = "large row width / bytes per call (width x rows per call; SERIALIZE on 17+)"
FIX_HINT = "select only the columns the endpoint renders; fetch wide values in the detail query"
# Off by default in test code and benchmark scripts (`[tool.pglab] default-per-file-ignores`): why.
OFF_IN_TEST_CODE = "a test compares whole fixture rows"

# -- static rule ------------------------------------------------------------

def _named_elsewhere(body: dict, fields: list) -> bool:
    """The star expands a CTE or a subquery of this statement, whose columns the SQL already names
    (`WITH r AS (SELECT a, b ...) SELECT r.* FROM r`), not a table's every column."""
    ctes = {n.unwrap(cte)[1].get("ctename") for cte in (body.get("withClause") or {}).get("ctes", [])}
    tables = n.range_tables(body.get("fromClause"))
    qualifier = n.strings(fields[:-1])
    sources = [tables.get(qualifier[-1], "?")] if qualifier else list(tables.values())
    return bool(sources) and all(source is None or source in ctes for source in sources)


def _rows_used_whole(call) -> bool:
    """The caller hands each row on whole (`dict(row)`, `Model(**row)`, `row._asdict()`): every
    column is used, so naming them would change nothing."""
    function = call.function
    if function is None:
        return False
    after = (call.node.lineno, call.node.col_offset)
    for node in ast.walk(function):
        if (getattr(node, "lineno", 0), getattr(node, "col_offset", 0)) <= after:
            continue
        if isinstance(node, ast.Call) and (
                any(keyword.arg is None for keyword in node.keywords)
                or (isinstance(node.func, ast.Name) and node.func.id == "dict" and len(node.args) == 1)
                or (isinstance(node.func, ast.Attribute) and node.func.attr == "_asdict")):
            return True
    return False


QUERY_KINDS = frozenset({"SelectStmt"})  # check_query is called only for these statements


def check_query(query, ctx) -> None:
    if query.kind != "SelectStmt" or not query.has("A_Star"):
        return
    body = query.body
    if not body.get("fromClause") or limited_to_one(body):
        return
    if unique_lookup(body, ctx.schema) or reads_only_system_catalogs(body):
        return
    if query.call is not None and (single_row(query.call) or _rows_used_whole(query.call)):
        return
    for target in body.get("targetList", []):
        value = n.unwrap(target)[1].get("val")
        kind, reference = n.unwrap(value)
        fields = reference.get("fields", []) if kind == "ColumnRef" else []
        if any(n.unwrap(field)[0] == "A_Star" for field in fields) and not _named_elsewhere(body, fields):
            ctx.report(value, "SELECT * in a list query sends every column of every row, wide text/jsonb "
                              "included, whether the caller uses them or not")
            return
