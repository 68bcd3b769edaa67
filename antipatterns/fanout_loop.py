"""INSERT per recipient in a loop (fan-out)

## What it is

A broadcast or a new message notifies every recipient with one INSERT per recipient, sent from
an application loop: `for user_id in recipients: INSERT INTO notifications ...`. The work is one
set-based statement, but the code ships it to the server a row at a time, usually inside one
transaction so that the broadcast is atomic.

## Why it hurts

Each iteration is a full client-server round trip: the backend binds the statement, starts an
executor, inserts one heap tuple and one entry per index, checks the foreign keys, writes WAL,
replies, and then idles until the client sends the next row. With N recipients the request pays
N round trips and N executor startups, so latency is linear in N and mostly network wait. All
the while the transaction stays open: it pins a pooled connection, keeps the `FOR KEY SHARE`
locks its foreign-key checks took on each recipient's `users` row, and holds back the xmin
horizon, so VACUUM cannot remove rows that died after it started. Without a surrounding
transaction it is worse: each INSERT commits and waits for its own WAL flush, and a failure
halfway leaves a partial broadcast.

## What you see under load

Broadcast latency grows with the audience (1,000 users, 1,000 statements) and the pool drains
while broadcasts run, so unrelated requests queue for a connection. In `pg_stat_statements` the
`INSERT INTO notifications` fingerprint has `calls` far above the request count, `rows / calls`
= 1, a tiny `mean_exec_time` and a large `total_exec_time`. `pg_stat_activity` shows the session
flipping between `active` and `idle in transaction` (`wait_event = 'ClientRead'`).

## How pglab detects it

Static: an INSERT executed inside a loop (`for`/`while` or a comprehension), typically
parameterised by the loop variable. Runtime: INSERT calls far above the number of requests in
`pg_stat_statements`, one row per call, and long transactions (sessions `idle in transaction`,
timed from `state_change`).

## The fix

Send the set once. When the recipients are in the database, `INSERT ... SELECT` finds them
server-side in one statement. When the application holds the list, pass arrays:
`INSERT ... SELECT * FROM unnest(%s::bigint[], %s::text[])`, one round trip for any size. For
very large sets use `COPY ... FROM STDIN` (`cursor.copy()` in psycopg 3). psycopg's
`executemany()` pipelines the round trips but still runs one statement per row.

## Example

The lab's chat service runs exactly this code (`pglab lab run fanout_loop`); its SQL is the fix file's.

### Naive

{fix:naive}

{path:naive}

### Fixed

{fix:fixed}

{path:fixed}

## References

- https://www.postgresql.org/docs/current/sql-insert.html
- https://www.postgresql.org/docs/current/functions-array.html
- https://www.postgresql.org/docs/current/populate.html
- https://www.postgresql.org/docs/current/pgstatstatements.html
- https://www.psycopg.org/psycopg3/docs/basic/copy.html
"""

from pglab.lab.check.loops import per_item

CODE = "PGL019"
CATEGORY = "round-trips"
STATIC_SIGNAL = "INSERT executed inside a loop"
RUNTIME_SIGNAL = "INSERT calls far above requests (one row per call); long transactions"
FIX_HINT = "insert the whole set in one statement: INSERT ... SELECT, unnest(arrays), or COPY"
# Off by default in test code and benchmark scripts (`[tool.pglab] default-per-file-ignores`): why.
OFF_IN_TEST_CODE = "a test seeds a handful of fixture rows, one INSERT each"

# -- static rule ------------------------------------------------------------

QUERY_KINDS = frozenset({"InsertStmt"})  # check_query is called only for these statements


def check_query(query, ctx) -> None:
    if query.kind != "InsertStmt":
        return
    found = per_item(query)
    if found is None:
        return
    table = query.body.get("relation", {}).get("relname", "the table")
    ctx.report(query.call.node, f"INSERT INTO {table} once per item of a loop: one round trip and one "
                                "index-maintenance pass per row, inside one long transaction")
