"""Long-poll loop holding a connection

## What it is

A long-poll endpoint ("wait up to 30 s for new notifications") takes a database connection and
loops inside it: query, nothing new, sleep a second, query again. Each waiting client pins a
connection for the whole wait, doing almost no work with it.

## Why it hurts

Connections become proportional to online users, not to work: a pool of 20 is exhausted by 20
idle browsers, and every other endpoint then queues behind them (with an unbounded pool, the
server reaches `max_connections` instead, PGL012). Each held connection is a backend process
with its own memory, mostly asleep. In psycopg's default non-autocommit mode the first `SELECT`
opens a transaction that stays open across the whole loop, so between polls the session is
`idle in transaction`: at READ COMMITTED each statement still sees new rows, but at REPEATABLE
READ the loop would never see a notification arrive (one snapshot for the whole transaction), and
that snapshot would also hold back VACUUM's horizon. Meanwhile the polling itself is load: a
thousand waiting users mean a thousand mostly empty queries per second.

## What you see under load

In `pg_stat_activity`, a large share of client backends whose `query` is the same polling
statement, `idle in transaction` (or `idle`), with `xact_start` (or the pool checkout) tens of
seconds old while `state_change` is under a second old: the signature of a loop, not of one slow
request. The polling statement tops `calls` in `pg_stat_statements` with close to zero rows per
call. Application-side, pool waits grow with the number of connected users, and unrelated
endpoints slow down or time out while the database CPU stays low.

## How pglab detects it

Static: a loop that executes a query and sleeps (`asyncio.sleep`, `time.sleep`) inside a single
held connection (`pool.connection()`, `connect()`) or transaction block. Runtime: sessions whose
transaction is far older than their last statement and that keep starting the same `SELECT`: a
loop polling inside one held transaction. A loop that holds its connection in autocommit, outside
any transaction, leaves no trace that the server can tell from an idle pooled connection; the
static rule and the pool's wait times are what show it.

## The fix

Hold no connection while waiting. The simple cure: borrow a connection for each look, one short
query, and give it back before sleeping; a waiting client then costs the pool nothing between
looks (this is what the lab measures). At scale, let Postgres push the event instead:
LISTEN/NOTIFY. One dedicated autocommit connection per process runs `LISTEN` and wakes
in-process waiters; writers call `pg_notify()` in the transaction that inserts the notification,
and it is delivered only if and when that transaction commits. Each waiter then runs one short
query on a pooled connection. Keep payloads small (ids, not rows; the default limit is under 8000
bytes) and treat notifications as hints, not a durable log: after the listener reconnects,
waiters simply re-query.

## Example

A client asks for notifications newer than the last one it has, and waits up to `wait` seconds.

### Naive

{fix:naive}

{path:naive}

### Fixed

{fix:fixed}

{path:fixed}

```python
# at scale: nobody polls; one listener per process wakes the waiters
waiters: dict[int, asyncio.Event] = {}

async def listen_forever():  # started with the app, on a connection of its own
    async with await psycopg.AsyncConnection.connect(DSN, autocommit=True) as conn:
        await conn.execute(LISTEN_NOTIFICATIONS)  # LISTEN on the channel the writers NOTIFY
        async for note in conn.notifies():
            if event := waiters.pop(int(note.payload), None):
                event.set()

async def poll_notifications(service, user_id: int, after: int, wait: float):
    event = waiters.setdefault(user_id, asyncio.Event())  # register before looking
    if found := await fixed(service, user_id, after, 0):  # one look, connection given back
        return found
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout=wait)  # no connection held while waiting
    return await fixed(service, user_id, after, 0)
```

## References

- https://www.postgresql.org/docs/current/sql-listen.html
- https://www.postgresql.org/docs/current/sql-notify.html
- https://www.postgresql.org/docs/current/monitoring-stats.html#MONITORING-PG-STAT-ACTIVITY-VIEW
- https://www.psycopg.org/psycopg3/docs/advanced/async.html
"""

import ast

from pglab.lab.check import flow

CODE = "PGL015"
CATEGORY = "connections"
STATIC_SIGNAL = "sleep-and-query loop inside a held connection or transaction"
RUNTIME_SIGNAL = "many connections idle (in transaction) for long, repeating the same poll query"
FIX_HINT = "LISTEN/NOTIFY with one listener per process, or release the connection between polls"

# -- static rule ------------------------------------------------------------

def _check(loop: ast.While | ast.For | ast.AsyncFor, ctx) -> None:
    module = ctx.module
    nodes = list(flow.body_nodes(loop.body))
    if not any(flow.is_sleep(node) for node in nodes):
        return
    held = flow.held_names(module, loop, loop)
    for node in nodes:
        call = module.call_of.get(node) if isinstance(node, ast.Call) else None
        if call is None or flow.loops_around(module, call.node)[:1] != [loop]:
            continue
        if "ListenStmt" in call.kinds or any(
                isinstance(other, ast.Call) and flow.call_name(other).rsplit(".", 1)[-1] in ("notifies",
                                                                                             "add_listener")
                for other in ast.walk(module.function_of(loop) or loop)):
            return
        receiver = (call.receiver_name or "").split(".")[0]
        inside = [block for block, _item, _kind in flow.database_contexts(module, call.node)
                  if any(ancestor is loop for ancestor in module.ancestors(block))]
        if receiver in held and not inside:
            ctx.report(loop, f"polling loop sleeps while holding {receiver}: one connection per poller is "
                             "pinned idle (in transaction, if one is open) between polls")
            return


def check_py_While(node: ast.While, ctx) -> None:
    _check(node, ctx)


def check_py_For(node: ast.For, ctx) -> None:
    _check(node, ctx)


def check_py_AsyncFor(node: ast.AsyncFor, ctx) -> None:
    _check(node, ctx)
