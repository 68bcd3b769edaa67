"""Every write also updates one hot parent row

## What it is

Each child write also UPDATEs a shared parent row in the same transaction: every message INSERT
bumps `conversations.last_message_at` and `message_count` (often `users.last_active_at` too).
All writers to one conversation, one user or one global counter row now queue on a single row.
Each statement is a cheap primary-key update, so it looks harmless in review.

## Why it hurts

An UPDATE marks the tuple it replaces with its transaction id (`xmax`), which row-locks it until
COMMIT or ROLLBACK. A second transaction updating the same row takes the tuple lock and then
sleeps on a ShareLock on the first transaction's id; a third waits on the tuple lock, and so on.
The lock is held for the rest of the transaction: the child INSERT, any application work and
round trips after the UPDATE, and the commit's WAL flush. One hot row therefore caps throughput
at about `1 / (time from UPDATE to COMMIT)`, whatever the number of backends. Every update also
leaves a dead row version, so the small parent table bloats between vacuums. Touching two
parents (user, conversation) in varying orders can deadlock (SQLSTATE 40P01).

## What you see under load

A lock convoy: write throughput per conversation stays flat as concurrency grows, p99 rises
roughly linearly with concurrent writers, and CPU stays low. `pg_stat_activity` shows many
`active` sessions with `wait_event_type = 'Lock'` and `wait_event` `transactionid` or `tuple`;
`pg_locks` shows ungranted locks of those types and `pg_blocking_pids()` forms chains. In
`pg_stat_statements` the tiny parent UPDATE has a `mean_exec_time` far above its plan's worth
(waiting counts as execution); with `log_lock_waits` the log shows `still waiting for ShareLock`.

## How pglab detects it

Static: an UPDATE of a shared parent row (a table the inserted table references, keyed by the
parent id) in the same transaction as the child INSERT. Runtime: lock waits on the same rows:
ungranted `transactionid`/`tuple` locks in `pg_locks` and sessions waiting with
`wait_event_type = 'Lock'` in `pg_stat_activity`, blocked again and again by the same few pids.

## The fix

Drop the hot update, or aggregate it. Most "last activity" and "count" columns can be derived
on read from an index on the child, `messages (conversation_id, created_at)`. If the value must
be stored, maintain it off the hot path: a periodic job applies one UPDATE per conversation for
many messages. If it must stay synchronous, make it the last statement before COMMIT and lock
parents in a fixed order: a shorter hold and no deadlocks, but still a queue.

## Example

### Naive

{fix:naive}

```python
async with conn.transaction():  # the first statement above, then the post's own work
    await conn.execute(TOUCH, {"conversation_id": cid})  # row-locked from here until COMMIT...
    tokens = await charge(conn, user_id, body)  # ...through the tokenizer call and the charge...
    await conn.execute(INSERT_MESSAGE, {...})  # ...so every other post to `cid` queues behind it
```

### Fixed

{fix:migrate}

{fix:fixed}

```python
async with conn.transaction():  # no parent UPDATE: the read derives the last activity (above)
    tokens = await charge(conn, user_id, body)
    await conn.execute(INSERT_MESSAGE, {...})
```

## References

- https://www.postgresql.org/docs/current/explicit-locking.html#LOCKING-ROWS
- https://www.postgresql.org/docs/current/view-pg-locks.html
- https://www.postgresql.org/docs/current/monitoring-stats.html#MONITORING-PG-STAT-ACTIVITY-VIEW
- https://www.postgresql.org/docs/current/runtime-config-locks.html
"""

import ast

from pglab.lab.check import flow
from pglab.lab.check import sqlnodes as n

CODE = "PGL018"
CATEGORY = "transactions"
STATIC_SIGNAL = "UPDATE of a shared parent row in the same transaction as the child INSERT"
RUNTIME_SIGNAL = "lock waits on the same rows: ungranted pg_locks, wait_event_type Lock"
FIX_HINT = "drop the hot parent UPDATE (derive the value on read) or aggregate it in a periodic job"

# -- static rule ------------------------------------------------------------

def _scope(call):
    """The transaction block around the call, else its function (psycopg's implicit transaction)."""
    for block, _item, kind in flow.database_contexts(call.module, call.node):
        if kind == "transaction":
            return block
    return call.function


def _references(child: str, columns: list[str], parent: str, ctx) -> bool:
    """The child row points at the parent: a foreign key in the schema, or a `<parent>_id` column."""
    table = ctx.schema.table(child)
    if table is not None and any(fk.references == parent for fk in table.foreign_keys):
        return True
    singular = parent[:-1] if parent.endswith("s") else parent
    return f"{singular}_id" in columns or f"{parent}_id" in columns


QUERY_KINDS = frozenset({"InsertStmt"})  # check_query is called only for these statements


def check_query(query, ctx) -> None:
    if query.kind != "InsertStmt" or query.call is None:
        return
    scope = _scope(query.call)
    if scope is None:
        return
    child = n.relation_name(query.body.get("relation", {}))
    columns = [n.unwrap(item)[1].get("name", "") for item in query.body.get("cols", [])]
    for other in query.call.module.calls_in(scope):
        for update in other.queries:
            if update.kind != "UpdateStmt":
                continue
            parent = n.relation_name(update.body.get("relation", {}))
            if parent == child or not _references(child, columns, parent, ctx):
                continue
            keyed = any(n.column(n.unwrap(term)[1].get("lexpr")) or n.column(n.unwrap(term)[1].get("rexpr"))
                        for term in n.conjuncts(update.body.get("whereClause")))
            if keyed and isinstance(other.node, ast.Call):
                ctx.report(other.node, f"every INSERT INTO {child} also updates its parent row in {parent} in the "
                                       "same transaction: concurrent writers queue on that one row lock")
                return
