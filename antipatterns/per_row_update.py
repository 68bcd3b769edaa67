"""UPDATE per row in a loop

## What it is

Code that changes many rows sends one UPDATE per row from an application loop: "mark all as
read" walks the user's unread notifications and runs `UPDATE notifications SET read_at = now()
WHERE id = %s` for each one. It is the write-side twin of N+1: the set of rows is already known,
but the server is asked about them one at a time.

## Why it hurts

Each UPDATE is a separate round trip and a separate statement: bind, executor startup, a
primary-key index descent to find one row, a new row version, WAL, reply, then the backend waits
for the client. The row-level work is the same as in one set-based UPDATE; everything around it
is paid N times, and most of the elapsed time is network and client latency. Inside a
transaction, every row updated so far stays locked until COMMIT, so the lock hold time grows
with N: concurrent writers to those rows wait longer, and two loops visiting overlapping rows in
different orders can deadlock (SQLSTATE 40P01). Outside a transaction, every row is its own
commit with its own WAL flush, and a crash halfway leaves the batch half applied.

## What you see under load

Latency of the endpoint grows linearly with the number of rows it touches (a user with 5,000
unread notifications means 5,000 statements). In `pg_stat_statements` the UPDATE fingerprint has
`calls` far above the request count with `rows / calls` = 1, a tiny `mean_exec_time` and a large
`total_exec_time`. `pg_stat_activity` shows the session alternating between `active` and `idle
in transaction` (`wait_event = 'ClientRead'`) for the length of the loop, and other writers of
the same rows waiting with `wait_event_type = 'Lock'`.

## How pglab detects it

Static: an UPDATE executed inside a loop (`for`/`while`, or a comprehension), typically
parameterised by the loop variable. Runtime: UPDATE calls far above the number of requests or
units of work in `pg_stat_statements`, with one row per call.

## The fix

Update the set in one statement. Pass the ids as an array: `UPDATE ... WHERE id = ANY(%s)` (a
Python list adapts to a PostgreSQL array in psycopg 3). Better still, when the rows can be
described by a predicate, say so and let the server find them (`WHERE user_id = %s AND read_at IS
NULL`). When each row gets a different value, join against arrays:
`UPDATE t SET v = u.v FROM unnest(%s::bigint[], %s::text[]) AS u(id, v) WHERE t.id = u.id`.
Keep each batch bounded (a few thousand ids).

## Example

### Naive

{fix:naive}

```python
# LIST_UNREAD and MARK_READ are the two statements above
with conn.transaction():
    unread = conn.execute(LIST_UNREAD, {"user_id": user_id}).fetchall()
    for (notification_id,) in unread:  # one round trip per row
        conn.execute(MARK_READ, {"id": notification_id})
```

### Fixed

{fix:fixed}

```python
conn.execute(MARK_ALL_READ, {"user_id": user_id})  # the statement above: one round trip for the set
# rows the client chose instead: conn.execute(MARK_THESE_READ, {"ids": ids, "user_id": user_id})
# with UPDATE notifications SET read_at = now() WHERE id = ANY(%(ids)s) AND user_id = %(user_id)s
```

## References

- https://www.postgresql.org/docs/current/sql-update.html
- https://www.postgresql.org/docs/current/functions-comparisons.html
- https://www.postgresql.org/docs/current/pgstatstatements.html
- https://www.postgresql.org/docs/current/explicit-locking.html#LOCKING-DEADLOCKS
- https://www.psycopg.org/psycopg3/docs/basic/adapt.html
"""

from pglab.lab.check import sqlnodes as n
from pglab.lab.check.loops import per_item
from pglab.lab.check.rewrite import any_rewrite

CODE = "PGL020"
CATEGORY = "round-trips"
STATIC_SIGNAL = "UPDATE executed inside a loop"
RUNTIME_SIGNAL = "UPDATE calls far above requests, one row per call (pg_stat_statements)"
FIX_HINT = "update the set in one statement: UPDATE ... WHERE id = ANY(%s) with a list of ids"

# -- static rule ------------------------------------------------------------

QUERY_KINDS = frozenset({"UpdateStmt"})  # check_query is called only for these statements


def check_query(query, ctx) -> None:
    if query.kind != "UpdateStmt":
        return
    found = per_item(query)
    if found is None:
        return
    table = query.body.get("relation", {}).get("relname", "the table")
    # `WHERE id = ANY($n)` only fits when every row gets the same new values: a SET fed from the
    # loop item (a different price per row) needs `UPDATE ... FROM unnest(...)` instead
    per_row_values = found.numbers & _set_parameters(query.body)
    ctx.report(query.call.node, f"UPDATE {table} once per item of a loop: a round trip, a row lock and a new "
                                "row version per item instead of one set-based statement",
               rewrite=None if per_row_values else any_rewrite(query, found.numbers),
               hint=_unnest_hint(query.body, table) if per_row_values else None)


def _unnest_hint(body: dict, table: str) -> str:
    """`UPDATE products SET price = v.price FROM unnest($1, $2) AS v(id, price) WHERE products.id = v.id`,
    in the statement's own column names."""
    sets = [n.unwrap(target)[1].get("name") for target in body.get("targetList", [])]
    keys = [column[1] for column in (n.column(expr.get("lexpr")) for kind, expr in
                                     (n.unwrap(term) for term in n.conjuncts(body.get("whereClause")))
                                     if kind == "A_Expr" and n.operator(expr) == "=") if column]
    names = [*keys, *[name for name in sets if name]]
    arrays = ", ".join(f"${index}" for index in range(1, len(names) + 1))
    assignments = ", ".join(f"{name} = v.{name}" for name in sets if name)
    where = " AND ".join(f"{table}.{key} = v.{key}" for key in keys) or "..."
    return (f"send every item's key and new values as arrays in one statement: UPDATE {table} SET {assignments} "
            f"FROM unnest({arrays}) AS v({', '.join(names)}) WHERE {where}")


def _set_parameters(body: dict) -> set[int]:
    return {number for target in body.get("targetList", []) for kind, node in n.walk(target)
            if kind == "ParamRef" and (number := n.param_number({kind: node})) is not None}
