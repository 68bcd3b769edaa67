"""Transaction held open across a slow stream

## What it is

A request opens a transaction (or just takes a pooled connection, which in psycopg's default
non-autocommit mode starts a transaction at the first statement), writes something, then does
slow work that is not database work, such as streaming an LLM reply token by token, calling an
HTTP API or sleeping, and only commits at the end. The database sits idle for seconds while the
transaction stays open.

## Why it hurts

The pooled connection is pinned for the whole generation time: with a pool of 20, twenty
concurrent streams leave no connection for any other endpoint, although Postgres is doing
nothing. Inside the server the open transaction keeps its costs: once it has written, it has a
transaction id, and it holds every row lock it took (an `UPDATE conversations SET updated_at`
blocks other writers to that conversation until commit); its lock on the table, harmless to
other DML, makes an `ALTER TABLE` wait, and every query behind the `ALTER` then waits too. While
its transaction id is running, no row version deleted or updated by a later transaction can be
removed: the database's xmin horizon is held back, VACUUM cannot clean up, and with streams
overlapping continuously the horizon never advances, so tables and indexes bloat. Its writes are
also invisible to everyone else until the end (the user's own message does not show in a second
tab).

## What you see under load

In `pg_stat_activity`, sessions in state `idle in transaction` with `wait_event = 'ClientRead'`,
`now() - state_change` of several seconds, `backend_xid` set and the last `INSERT` as `query`;
as many of them as there are concurrent streams. In the application, pool waits
(`requests_waiting`, `requests_wait_ms` in psycopg_pool's stats) and rising latency on every
endpoint while the database CPU is low. Over time, `n_dead_tup` in `pg_stat_user_tables` keeps
growing and autovacuum logs report tuples "dead but not yet removable".

## How pglab detects it

Static: inside `conn.transaction()` or a held `pool.connection()` block, an `await` of non-database
work, a `yield` (a streaming generator), `asyncio.sleep`/`time.sleep`, or an HTTP client call,
after a statement has been executed. Runtime: sessions idle in transaction for seconds, timed
from `state_change` (not `xact_start`, which also counts the useful work) and over the lab's
limit, together with pool waits in the service.

## The fix

Split the work into two short transactions and hold nothing in between: insert the user's
message and commit, return the connection, stream the reply with no connection held, then take a
connection again to insert the assistant's message (and update counters) in a second
transaction. Decide explicitly what the gap means: the user message may now exist without a
reply, so record a failed or interrupted reply when the stream breaks. Keep
`idle_in_transaction_session_timeout` as the backstop for leaks (PGL016).

## Example

The lab's chat service runs exactly this code (`pglab lab run streaming_txn`); its SQL is the fix file's.

### Naive

{fix:naive}

{path:naive}

### Fixed

{fix:fixed}

{path:fixed}

## References

- https://www.postgresql.org/docs/current/monitoring-stats.html#MONITORING-PG-STAT-ACTIVITY-VIEW
- https://www.postgresql.org/docs/current/runtime-config-client.html#GUC-IDLE-IN-TRANSACTION-SESSION-TIMEOUT
- https://www.postgresql.org/docs/current/routine-vacuuming.html
- https://www.postgresql.org/docs/current/explicit-locking.html
- https://www.psycopg.org/psycopg3/docs/basic/transactions.html
"""

import ast

from pglab.lab.check import flow
from pglab.lab.check.extract import SQL_METHODS

CODE = "PGL014"
CATEGORY = "transactions"
STATIC_SIGNAL = "await/yield/sleep/HTTP call inside a transaction or a held connection"
RUNTIME_SIGNAL = "sessions idle in transaction for seconds (from state_change); pool waits"
FIX_HINT = "commit before the slow work: two short transactions, stream with no connection held"

# -- static rule ------------------------------------------------------------

DATABASE_AWAITS = SQL_METHODS | flow.ROW_METHODS | {"commit", "rollback", "close", "release", "transaction",
                                                     "begin", "refresh", "flush", "merge", "get", "add", "delete",
                                                     "set_type_codec", "notifies", "wait", "run_sync"}


def _listens(module, block) -> bool:
    """A connection held to LISTEN (and wait for notifications) is doing its job by waiting."""
    for call in module.calls_in(block):
        if "ListenStmt" in call.kinds:
            return True
    return any(isinstance(node, ast.Call) and flow.call_name(node).rsplit(".", 1)[-1] in ("notifies",
                                                                                          "add_listener")
               for node in ast.walk(block))


LENDERS = ("contextmanager", "asynccontextmanager", "fixture")


def _lends(module, node: ast.AST) -> bool:
    """A yield in a context manager (or a pytest fixture) hands the connection to the caller's
    `with` block: it is how a connection is lent, not a stream while a transaction waits."""
    names = flow.decorators(module.function_of(node))
    return any(name.rsplit(".", 1)[-1] in LENDERS for name in names)


def _slow(node: ast.AST, held: set[str], module) -> str | None:
    """What makes `node` slow non-database work, or None."""
    if isinstance(node, ast.Yield | ast.YieldFrom):
        if _lends(module, node):
            return None
        return "a yield (the caller streams while the transaction stays open)"
    if flow.is_sleep(node):
        return "a sleep"
    if flow.is_http(node):
        return "an HTTP call"
    if flow.is_stream_write(node):
        return "a write to the client"
    if isinstance(node, ast.Await) and isinstance(node.value, ast.Call):
        call = node.value
        if call in module.call_of or flow.is_sleep(call) or flow.is_http(call) or flow.is_stream_write(call):
            return None
        name = flow.call_name(call)
        parts = name.split(".")
        if parts[-1] in DATABASE_AWAITS or (parts[0] in held and len(parts) > 1):
            return None
        if any(isinstance(arg, ast.Name) and arg.id in held for arg in call.args):
            return None  # a helper given the connection: database work
        return f"an await of non-database work ({name or 'a call'})"
    return None


def _given_connection(call: ast.Call, held: set[str]) -> bool:
    return any(isinstance(arg, ast.Name) and arg.id in held for arg in call.args)


def _check(block, ctx) -> None:
    module = ctx.module
    kinds = [flow.context_kind(item.context_expr) for item in block.items]
    if not any(kinds):
        return
    kind = "transaction" if "transaction" in kinds else "held connection"
    held = {item.optional_vars.id for item in block.items if isinstance(item.optional_vars, ast.Name)}
    held |= {name for name in ("conn", "connection", "cur", "cursor", "session", "tx") if name in held}
    executed = False
    for node in flow.body_nodes(block.body):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and _given_connection(node.value, held):
            held |= {target.id for target in node.targets if isinstance(target, ast.Name)}  # repo = Repo(conn)
        if isinstance(node, ast.Await) and isinstance(node.value, ast.Call) and _given_connection(node.value, held):
            executed = True  # an awaited helper handed the connection ran a statement
        if isinstance(node, ast.Call) and node in module.call_of:
            executed = True
            continue
        if not executed:
            continue
        if isinstance(node, ast.With | ast.AsyncWith) and any(flow.context_kind(i.context_expr) for i in node.items):
            return  # the inner block is checked on its own
        reason = _slow(node, held, module)
        if reason and kind == "held connection" and _listens(module, block):
            return
        if reason:
            ctx.report(node, f"{reason} inside a {kind}, after a statement ran: the connection sits idle "
                             "in transaction (locks and snapshot held) for as long as the slow work takes")
            return


def check_py_With(node: ast.With, ctx) -> None:
    _check(node, ctx)


def check_py_AsyncWith(node: ast.AsyncWith, ctx) -> None:
    _check(node, ctx)
