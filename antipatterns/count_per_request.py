"""COUNT(*) on every request

## What it is

A `count(*)` run on every request, usually from middleware or a per-request hook: the unread
notification badge, a "you have N messages" header. It runs on API calls that never display it,
and its cost grows with the rows being counted: cheap for a new user, expensive for the power
users who also make the most requests.

## Why it hurts

Postgres keeps no row count per table or per predicate: under MVCC each transaction may see a
different set of rows, so `count(*)` must visit every qualifying row and check its visibility.
The best plan is an `Index Only Scan`, which still reads every matching index entry, and on heap
pages not marked all-visible in the visibility map (common on a write-heavy table like
notifications) it visits the heap as well (`Heap Fetches`). The cost is linear in the matching
rows, and middleware multiplies it by the total request rate, not by the page views that show the
number. Every endpoint, however cheap, pays it and holds a pooled connection for it.

## What you see under load

A latency floor under every endpoint, and one statement at the top of `pg_stat_statements` by
`calls` (about the total number of requests) and by `total_exec_time`, with `shared_blks_hit`
per call growing with the biggest users' row counts. `EXPLAIN (ANALYZE, BUFFERS)` shows an
`Aggregate` over an `Index Only Scan` with many `Heap Fetches`, or over a `Bitmap Heap Scan` or
`Seq Scan`. Removing the middleware lowers the latency of every endpoint at once.

## How pglab detects it

Static: a `count(*)` query executed from middleware or a per-request hook (a function registered
to run on every request). Runtime: a count statement at the top of `pg_stat_statements` ranked by
calls x time (`total_exec_time`), with calls of the order of the request count.

## The fix

Take it off the hot path. Maintain the count on write, in the same transaction as every write
that changes it, and read a few rows instead of counting thousands. Every path that inserts,
marks read or deletes notifications (retention jobs and one-off scripts too) must keep it in
step, which is why the reference fix does it with statement-level triggers on notifications. They
append each statement's change per user to a ledger (`unread_deltas`) that the badge sums, rather
than updating one counter row per user (`unread = unread + 1`, see counter_race): a broadcast to
every user would update every user's row, and concurrent broadcasts would queue on those row
locks; a single global counter row would be worse still (see write_contention). A periodic job
folds each user's ledger rows into one. An index is not the fix: with an index on notifications
(user_id) the count still reads every one of a busy user's rows and their heap pages, on every
request. Or, simpler, drop it from the middleware and count only where it is shown, capped for a
"99+" badge: `SELECT count(*) FROM (SELECT 1 FROM notifications WHERE ... LIMIT 100) s`.

## Example

### Naive

{fix:naive}

```python
@app.middleware("http")
async def unread_badge(request, call_next):
    async with pool.connection() as conn:  # every request, every endpoint: the count above
        cur = await conn.execute(COUNT_UNREAD, {"user_id": request.state.user_id})
        (request.state.unread,) = await cur.fetchone()
    return await call_next(request)
```

### Fixed

{fix:migrate}

{fix:fixed}

```python
# no count in the middleware: the header sums the user's ledger rows (the second statement
# above), which the triggers keep in step with every write to notifications
async def unread_badge(conn, user_id):
    cur = await conn.execute(READ_UNREAD, {"user_id": user_id})
    return (await cur.fetchone())[0]
```

## References

- https://www.postgresql.org/docs/current/indexes-index-only-scans.html
- https://www.postgresql.org/docs/current/routine-vacuuming.html#VACUUM-FOR-VISIBILITY-MAP
- https://www.postgresql.org/docs/current/pgstatstatements.html
- https://www.psycopg.org/psycopg3/docs/basic/transactions.html
"""

import ast

from pglab.lab.check import flow
from pglab.lab.check import sqlnodes as n
from pglab.lab.check.extract import dotted
from pglab.lab.check.loops import callers

CODE = "PGL008"
CATEGORY = "round-trips"
STATIC_SIGNAL = "count(*) query executed from middleware or a per-request hook"
RUNTIME_SIGNAL = "a count query at the top of pg_stat_statements by calls x total time"
FIX_HINT = "maintain a counter on write, or drop count(*) from the hot path (count only where shown)"

# -- static rule ------------------------------------------------------------

HOOK_DECORATORS = frozenset({"middleware", "before_request", "after_request", "before_app_request",
                             "context_processor", "app_context_processor", "url_value_preprocessor",
                             "before_first_request"})
HOOK_METHODS = frozenset({"dispatch", "__call__", "process_request", "process_view", "process_response",
                          "process_template_response", "before_request", "after_request"})


def _per_request(function, module) -> bool:
    """`function` is code every request goes through: middleware, before/after hooks, context
    processors."""
    if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
        return False
    if any(name.rsplit(".", 1)[-1] in HOOK_DECORATORS for name in flow.decorators(function)):
        return True
    if "middleware" in function.name.lower():
        return True
    owner = flow.enclosing_class(module, function)
    if owner is not None and function.name in HOOK_METHODS:
        bases = [dotted(base) for base in owner.bases]
        return "middleware" in owner.name.lower() or any("middleware" in base.lower() for base in bases)
    return False


QUERY_KINDS = frozenset({"SelectStmt"})  # check_query is called only for these statements


def check_query(query, ctx) -> None:
    if query.kind != "SelectStmt" or query.call is None:
        return
    counts = [kind for kind, body in n.walk(query.body.get("targetList"))
              if kind == "FuncCall" and (n.strings(body.get("funcname")) or [""])[-1] == "count"]
    if not counts:
        return
    if _per_request(query.call.function, query.call.module):
        ctx.report(query.call.node, "count() on every request from middleware or a per-request hook: a scan "
                                    "of every matching row, multiplied by the request rate")
        return
    for site in callers(query):  # a middleware that calls a counting helper
        hook = query.call.module.function_of(site)
        if hook is not None and _per_request(hook, query.call.module):
            helper = flow.call_name(site).rsplit(".", 1)[-1]
            ctx.report(site, f"{helper}() runs a count() and is called on every request from middleware or a "
                             "per-request hook: a scan of every matching row, multiplied by the request rate")
            return
