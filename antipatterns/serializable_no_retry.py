"""SERIALIZABLE without a retry loop

## What it is

The code runs transactions at `ISOLATION LEVEL SERIALIZABLE` (to be safe, or to stop a race such
as two concurrent messages overrunning a user's token quota) but handles a serialization
failure, SQLSTATE `40001`, like any other error, so it reaches the client as a 500. At this
level such failures are not bugs but the mechanism: the contract is that the application retries.

## Why it hurts

Postgres implements SERIALIZABLE with Serializable Snapshot Isolation (SSI). Transactions run on
a snapshot and block each other no more than at REPEATABLE READ; instead each records what it
read with non-blocking SIRead predicate locks, and the server tracks read/write dependencies
between concurrent transactions. When they form a pattern that no serial order could produce,
one transaction is rolled back with `could not serialize access due to read/write dependencies
among transactions`, at any statement including COMMIT. Updating a row that a concurrent
transaction changed and committed fails too (`... due to concurrent update`). The failure rate
grows with concurrency, transaction length and the amount read: a sequential scan predicate-locks
the whole relation, and too many fine-grained locks are promoted to page or relation level, so
unrelated writers start to "conflict". With no retry, each one is a user-visible error.

## What you see under load

An error rate that rises with concurrency while latency looks fine: application logs full of
`SerializationFailure` (SQLSTATE 40001), server log lines ending in `HINT: The transaction might
succeed if retried.`, `pg_stat_database.xact_rollback` climbing, and many `pg_locks` rows with
`mode = 'SIReadLock'`. Failures cluster on hot rows and on tables read by sequential scans.

## How pglab detects it

Static: the isolation level set to SERIALIZABLE (`SET TRANSACTION ISOLATION LEVEL SERIALIZABLE`,
`default_transaction_isolation`, or `isolation_level = IsolationLevel.SERIALIZABLE` in psycopg)
with no retry on 40001: no handler for `SerializationFailure` in a loop that re-runs the whole
transaction. Runtime: serialization failures surfacing as errors (40001 in the server log or
the service's error counts), with `xact_rollback` growing alongside.

## The fix

Retry the whole transaction, reads included: on `SerializationFailure` (and `DeadlockDetected`,
40P01) let it roll back, sleep with jittered exponential backoff and run it again from the start,
a bounded number of times, with no side effects outside the database inside the retried unit
(the tokenizer call, an e-mail, a payment: done once, before or after, never twice). Keep such
transactions short, declare read-only ones `READ ONLY`, and index what they read so predicate
locks stay narrow. When one row is the contention point, as an account's quota is, explicit
locking is simpler and fails nothing: READ COMMITTED with `SELECT ... FOR UPDATE` on that row
first (or an atomic conditional `UPDATE`), so an overlapping transaction waits for the lock and
then reads the committed value. That is the fix the lab measures: the server still logs every
failed attempt of a retry loop, while a lock makes the attempt unnecessary.

## Example

A prompt is posted only if it fits its author's token quota; the check, the message and the
charge run as one transaction.

### Naive

{fix:naive}

{path:naive}

### Fixed

{fix:fixed}

{path:fixed}

```python
# where SERIALIZABLE must stay, retry the whole transaction instead:
for attempt in range(5):
    try:
        return await naive(conn, conversation_id, user_id, body, tokens)  # tokens counted once, before
    except (psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected):
        if attempt == 4:
            raise
        await asyncio.sleep(random.uniform(0, 0.01 * 2**attempt))  # jittered exponential backoff
```

## References

- https://www.postgresql.org/docs/current/transaction-iso.html#XACT-SERIALIZABLE
- https://www.postgresql.org/docs/current/mvcc-serialization-failure-handling.html
- https://www.postgresql.org/docs/current/errcodes-appendix.html
- https://www.psycopg.org/psycopg3/docs/api/errors.html
"""

import ast

from pglab.lab.check import flow
from pglab.lab.check import sqlnodes as n
from pglab.lab.check.extract import dotted

CODE = "PGL022"
CATEGORY = "transactions"
STATIC_SIGNAL = "isolation set to SERIALIZABLE with no retry on SQLSTATE 40001"
RUNTIME_SIGNAL = "serialization failures (SQLSTATE 40001) surfacing as errors; xact_rollback growth"
FIX_HINT = "re-run the whole transaction on 40001/40P01 with jittered backoff (or lock explicitly)"

# -- static rule ------------------------------------------------------------

ISOLATION_SETTINGS = ("transaction_isolation", "default_transaction_isolation")
RETRY_ERRORS = ("SerializationFailure", "SerializationError", "TransactionRollbackError", "DeadlockDetected",
                "40001")


def _mentions_serializable(node: ast.AST | None) -> bool:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value.strip().lower() == "serializable"
    return isinstance(node, ast.Attribute | ast.Name) and dotted(node).rsplit(".", 1)[-1].upper() == "SERIALIZABLE"


def _has_retry(module) -> bool:
    """Somewhere in the module, a loop around a handler of serialization failures, or a retry
    decorator (tenacity, backoff) or helper."""
    for node in module.nodes:
        if isinstance(node, ast.ExceptHandler) and node.type is not None:
            caught = ast.unparse(node.type)
            handles = any(name in caught for name in RETRY_ERRORS) or _checks_sqlstate(node)
            if handles and flow.loops_around(module, node):
                return True
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and any(
                "retry" in name.lower() or "backoff" in name.lower() for name in flow.decorators(node)):
            return True
        if isinstance(node, ast.Call) and "retr" in flow.call_name(node).lower():
            return True
    return False


def _checks_sqlstate(handler: ast.ExceptHandler) -> bool:
    return any(isinstance(node, ast.Constant) and node.value == "40001" for node in ast.walk(handler))


def check_py_Call(node: ast.Call, ctx) -> None:
    for keyword in node.keywords:
        if keyword.arg in ("isolation_level", "isolation") and _mentions_serializable(keyword.value):
            if not _has_retry(ctx.module):
                ctx.report(node, "SERIALIZABLE transactions with no retry on SQLSTATE 40001: every "
                                 "serialization failure under concurrency surfaces as an error")
            return
    setter = flow.call_name(node).endswith("set_isolation_level") and node.args
    if setter and _mentions_serializable(node.args[0]) and not _has_retry(ctx.module):
        ctx.report(node, "SERIALIZABLE with no retry on SQLSTATE 40001: serialization failures become errors")


def check_py_Assign(node: ast.Assign, ctx) -> None:
    setter = any(isinstance(target, ast.Attribute) and target.attr == "isolation_level" for target in node.targets)
    if setter and _mentions_serializable(node.value) and not _has_retry(ctx.module):
        ctx.report(node, "SERIALIZABLE with no retry on SQLSTATE 40001: serialization failures become errors")


def _serializable_statement(query) -> bool:
    for kind, body in n.walk({query.kind: query.body}):
        if kind == "DefElem" and body.get("defname") in ISOLATION_SETTINGS and \
                "serializable" in str(n.constant(body.get("arg"))).lower():
            return True
        if kind == "VariableSetStmt" and body.get("name") in ISOLATION_SETTINGS and \
                any("serializable" in str(n.constant(arg)).lower() for arg in body.get("args", [])):
            return True
    return False


QUERY_KINDS = frozenset({"TransactionStmt", "VariableSetStmt"})  # check_query is called only for these statements


def check_query(query, ctx) -> None:
    if query.call is None or query.kind not in ("TransactionStmt", "VariableSetStmt"):
        return
    if _serializable_statement(query) and not _has_retry(query.call.module):
        ctx.report(query.call.node, "SERIALIZABLE with no retry on SQLSTATE 40001: serialization failures "
                                    "surface as errors instead of being retried")
