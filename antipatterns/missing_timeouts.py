"""No statement, idle-in-transaction or acquire timeouts

## What it is

The service talks to Postgres with every timeout at its default, which is "wait forever":
`statement_timeout`, `lock_timeout` and `idle_in_transaction_session_timeout` are 0 (disabled),
libpq's `connect_timeout` is unset, and the pool's acquire timeout is missing or far longer than
any request deserves. Nothing goes wrong until one query, one lock or one leaked transaction
goes wrong, and then nothing stops it.

## Why it hurts

A timeout in the application or the load balancer does not stop the server: unless the driver
sends a cancel request, the backend runs the statement to completion, and it notices a vanished
client only when it next writes to the socket (or with `client_connection_check_interval`, off by
default). So a runaway query (a bad plan, a missing `LIMIT`) keeps its CPU, its I/O and its
pooled connection for minutes, and users who retry start more copies of it. Without
`lock_timeout`, a statement waits on a lock for as long as the holder keeps it; an `ALTER
TABLE` queued for its exclusive lock blocks every later query on the table for that whole time.
A transaction left open by a crashed or forgotten code path holds its row locks and, once it has
a transaction id, holds back the xmin horizon so VACUUM removes nothing newer, indefinitely.
Without an acquire timeout, requests wait on the pool for as long as any of that lasts.

## What you see under load

One slow thing turning into an outage: in `pg_stat_activity`, `active` sessions whose
`now() - query_start` runs to minutes, sessions `idle in transaction` for hours, and chains of
`wait_event_type = 'Lock'` behind them (`pg_blocking_pids()` shows who blocks whom). The pool
fills with connections running abandoned work, request latency rises to the client timeout, and
dead tuples pile up. `SHOW statement_timeout` from the application's role returns `0`.

## How pglab detects it

Static: a pool or connection created without them: no `statement_timeout` or
`idle_in_transaction_session_timeout` (via `options="-c ..."`, the DSN or `SET`) and none set in
the migrations with `ALTER ROLE ... SET`, no `connect_timeout`, and a pool without an acquire
`timeout` (or an unbounded one). Runtime: the settings as the application's role sees them
(`pg_settings`, `pg_db_role_setting`) at 0, and runaway work: statements active, or sessions
idle in transaction, far longer than any request should take; and, whatever the settings, a
transaction idle for seconds while other sessions queue on its locks (its own timeout, which no
other session can read, is evidently 0 or longer than that).

## The fix

Set the timeouts for the application's connections, not server-wide, so migrations and batch
jobs can choose their own: `statement_timeout` a little above the slowest legitimate query in the
request path, `lock_timeout` short, `idle_in_transaction_session_timeout` a few seconds (the
server then terminates such sessions, releasing their locks and horizon), plus `connect_timeout`
and a pool acquire timeout well under the request SLO. Pass them per connection, as below, or
once with `ALTER ROLE chat_app SET statement_timeout = '5s'`. A transaction that waits on a call
out of the database (a webhook, a link preview) can set a tighter limit for itself alone with
`SET LOCAL` (or `set_config(name, value, true)`), without cutting short the sessions that
legitimately wait longer. Handle the resulting errors:
57014 `query_canceled` and 55P03 `lock_not_available` are retryable or reportable, not crashes.

## Example

### Naive

```python
# every timeout at its default: statement, lock and idle-in-transaction never time out,
# connect waits as long as TCP does, requests wait up to 30 s for a connection
pool = AsyncConnectionPool(DSN, max_size=20, open=False)
```

### Fixed

```python
pool = AsyncConnectionPool(
    DSN,
    max_size=20,
    timeout=2.0,  # acquire timeout: raise PoolTimeout instead of queueing
    kwargs={
        "connect_timeout": 5,
        "options": "-c statement_timeout=5s -c lock_timeout=2s"
        " -c idle_in_transaction_session_timeout=10s",
    },
    open=False,
)
```

## References

- https://www.postgresql.org/docs/current/runtime-config-client.html#GUC-STATEMENT-TIMEOUT
- https://www.postgresql.org/docs/current/runtime-config-client.html#GUC-LOCK-TIMEOUT
- https://www.postgresql.org/docs/current/runtime-config-client.html#GUC-IDLE-IN-TRANSACTION-SESSION-TIMEOUT
- https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-CONNECT-CONNECT-TIMEOUT
- https://www.psycopg.org/psycopg3/docs/api/pool.html
"""

import ast

from pglab.lab.check.pools import creation

CODE = "PGL016"
CATEGORY = "connections"
STATIC_SIGNAL = "pool or connection created without statement/idle-in-transaction/acquire timeouts"
RUNTIME_SIGNAL = "timeouts at 0 for the app role; runaway active / idle-in-transaction sessions, idle lock holders"
FIX_HINT = "set statement_timeout, lock_timeout, idle_in_transaction_session_timeout, pool timeout"
# Off by default in test code and benchmark scripts (`[tool.pglab] default-per-file-ignores`): why.
OFF_IN_TEST_CODE = "a test's connections live for one test; a runaway there fails the test run, not production"

# -- static rule ------------------------------------------------------------

SERVER_TIMEOUTS = ("statement_timeout", "idle_in_transaction_session_timeout")


def _set_in_code(module, setting: str) -> bool:
    """A `SET statement_timeout` executed anywhere in the module (a configure callback, a startup hook)."""
    return any(setting in query.sql for call in module.calls for query in call.queries)


def check_py_Call(node: ast.Call, ctx) -> None:
    created = creation(node)
    if created is None or created.library == "psycopg2" and created.kind == "pool" or created.forwards_settings:
        return
    missing = [setting for setting in SERVER_TIMEOUTS
               if not created.mentions(setting, ctx.module) and setting not in ctx.schema.settings
               and not _set_in_code(ctx.module, setting)]
    if not missing:
        return
    what = "pool" if created.kind == "pool" else "connection"
    ctx.report(node, f"{what} created without {' or '.join(missing)}: a runaway query or an abandoned "
                     "transaction holds its connection and locks for ever")
