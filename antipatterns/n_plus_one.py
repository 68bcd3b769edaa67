"""N+1 queries: one query per row of another query

## What it is

Code fetches a list with one query, then loops over the rows and runs another query for each:
a conversation's messages, then the author's name for every message. One request
becomes 1 + N statements. ORMs do it silently through lazy-loaded relations; in hand-written
code it is a `conn.execute` inside a `for` loop.

## Why it hurts

Each statement is a full round trip: the client sends it and waits; the backend parses and plans
it (unless prepared), takes a snapshot, starts the executor, runs a tiny index lookup and sends
the result back. For a one-row lookup that fixed overhead plus network latency is nearly all the
cost, and it is paid N times in sequence. The pooled connection stays checked out for the whole
loop. And the server cannot optimise across statements: fifty separate index probes never become
one join, one hash or one ordered pass over the index.

## What you see under load

Request latency far above the database time of any single query, growing with the rows shown.
In `pg_stat_statements` the inner query has `calls` many times the request count, a tiny
`mean_exec_time` and a large `total_exec_time`. In `pg_stat_activity` connections flip between
`active` and `idle` (or `idle in transaction`) with wait event `ClientRead`: the backend is
waiting for the client's next statement. Pool waits rise and throughput flattens early while
database CPU looks modest.

## How pglab detects it

Static: a query executed inside a loop over the rows of another query, with a parameter taken
from the loop variable. Runtime: the same fingerprint (pglast fingerprint, after `%s` becomes
`$n`) from the same call site at least 5 times in one unit of work (a test, a request), and a
fingerprint whose calls in `pg_stat_statements` far exceed the request count.

## The fix

Fetch the related rows in the same statement with a `JOIN`, and let the planner choose a nested
loop, hash or merge join over all of them at once. When the keys come from a separate step (a
cache miss, another service), batch them into one query, `WHERE id = ANY(%s)` with a Python list,
which psycopg sends as one array parameter (an empty list works too, unlike `IN ()`), and match
the rows up in Python. Pipeline mode saves round trips but still runs N statements.

## Example

The lab's chat service runs exactly this code (`pglab lab run n_plus_one`); its SQL is the fix file's.

### Naive

{fix:naive}

{path:naive}

### Fixed

{fix:fixed}

{path:fixed}

## References

- https://www.postgresql.org/docs/current/queries-table-expressions.html#QUERIES-JOIN
- https://www.postgresql.org/docs/current/functions-comparisons.html
- https://www.postgresql.org/docs/current/pgstatstatements.html
- https://www.postgresql.org/docs/current/monitoring-stats.html#MONITORING-PG-STAT-ACTIVITY-VIEW
- https://www.psycopg.org/psycopg3/docs/basic/adapt.html
"""

from pglab.lab.check import flow
from pglab.lab.check.loops import per_item, per_item_through_helper
from pglab.lab.check.rewrite import any_rewrite

CODE = "PGL007"
CATEGORY = "round-trips"
STATIC_SIGNAL = "query executed inside a loop over rows, parameterised by the loop variable"
RUNTIME_SIGNAL = "same fingerprint called far more often than requests (>= 5 per unit of work)"
FIX_HINT = "fetch the related rows with a JOIN, or in one batch with WHERE id = ANY(%s)"

# -- static rule ------------------------------------------------------------

QUERY_KINDS = frozenset({"SelectStmt"})  # check_query is called only for these statements


def check_query(query, ctx) -> None:
    if query.kind != "SelectStmt":
        return
    found = per_item(query)
    if found is not None and found.over_rows:
        ctx.report(query.call.node, "query runs once per row of another query (N+1): one round trip, parse and "
                                    "plan per row, with the connection held for the whole loop",
                   rewrite=any_rewrite(query, found.numbers))
        return
    through = per_item_through_helper(query) if found is None else None
    if through is not None and through[1].over_rows:
        site, _ = through
        helper = flow.call_name(site).rsplit(".", 1)[-1]
        ctx.report(site, f"{helper}() runs a query and is called once per row of another query (N+1): one "
                         "round trip, parse and plan per row")
