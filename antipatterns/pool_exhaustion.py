"""More connections than Postgres can take

## What it is

The application opens a new connection for every request, or it has pools whose combined
maximum (pool size x worker processes x replicas) is above the server's `max_connections`. The
number of server connections then follows the number of concurrent requests, and under load
it runs into the server's hard limit.

## Why it hurts

Every connection is a dedicated backend process forked by the postmaster. Opening one costs a
fork, authentication (TLS and SCRAM when remote) and warming the backend's catalog caches:
milliseconds of work per request before the first query runs. Each backend keeps its own
private memory (caches, plus up to `work_mem` per sort or hash node). `max_connections` is a
hard cap fixed at server start, because shared memory (process slots, lock tables) is sized from
it; the last `superuser_reserved_connections` (and, from PostgreSQL 16, `reserved_connections`)
slots are kept for administrators, so the application hits the wall below `max_connections`.
Past the cap, new connections are refused outright with `FATAL: sorry, too many clients already`
(SQLSTATE 53300). Well below it, more active backends than CPU cores only add context switches
and contention on shared locks: throughput peaks at a small multiple of the core count and then
falls while latency rises.

## What you see under load

`sum(numbackends)` in `pg_stat_database` (or client backends counted in `pg_stat_activity`)
climbing with traffic towards `max_connections`; with connect-per-request, `backend_start` a few
milliseconds old on most rows and `pg_stat_database.sessions` (14+) growing as fast as requests.
Then a cliff: errors `sorry, too many clients already` or `remaining connection slots are
reserved ...` in the application and the server log, failed requests while the CPU is busy
forking and authenticating, and an outage for every other client of the same server (workers,
cron jobs, even your own `psql`).

## How pglab detects it

Static: `psycopg.connect` / `AsyncConnection.connect` inside a request handler or any function
called per request rather than once at startup; a pool created per request; or a pool
`max_size` (times known worker counts) above `max_connections` (from the server's config or
`--dsn`). Runtime: backends near `max_connections`: warn at 80-90 %, critical at 95 % of
`max_connections` minus the reserved slots; any "too many clients" refusal.

## The fix

Create one bounded pool per process at startup and share it across all requests. Size it to what
the database can execute concurrently (a few times its cores), not to the number of concurrent
requests: requests wait briefly for a connection instead of opening one (bound that wait too, see
PGL013). Budget the sum over all processes and replicas, plus headroom for migrations and admin
sessions, below `max_connections` minus reserved slots. With many replicas, put PgBouncer in
transaction mode in front. Raising `max_connections` only moves the cliff.

## Example

The lab's chat service runs exactly this code (`pglab lab run pool_exhaustion`); its SQL is the fix file's.

### Naive

{fix:naive}

{path:naive}

### Fixed

{fix:fixed}

{path:fixed}

## References

- https://www.postgresql.org/docs/current/runtime-config-connection.html#GUC-MAX-CONNECTIONS
- https://www.postgresql.org/docs/current/connect-estab.html
- https://www.postgresql.org/docs/current/monitoring-stats.html#MONITORING-PG-STAT-DATABASE-VIEW
- https://www.postgresql.org/docs/current/monitoring-stats.html#MONITORING-PG-STAT-ACTIVITY-VIEW
- https://www.psycopg.org/psycopg3/docs/advanced/pool.html
"""

import ast

from pglab.lab.check import flow
from pglab.lab.check.pools import constant_int, creation, per_request, retry_loop

CODE = "PGL012"
CATEGORY = "connections"
STATIC_SIGNAL = "connect per request, or pool max_size (x processes) above max_connections"
RUNTIME_SIGNAL = "numbackends near max_connections (warn 80-90 %, critical 95 %); too many clients"
FIX_HINT = "open one bounded pool per process at startup; keep the total below max_connections"
# Off by default in test code and benchmark scripts (`[tool.pglab] default-per-file-ignores`): why.
OFF_IN_TEST_CODE = "a test opens its own connections on purpose; none of them outlives the test"

# -- static rule ------------------------------------------------------------

def _pool_size(created) -> int | None:
    if created.library == "sqlalchemy":
        size = constant_int(created.keyword("pool_size"))
        overflow = constant_int(created.keyword("max_overflow"))
        return None if size is None else size + (overflow if overflow is not None else 10)
    for name in ("max_size", "maxconn", "maxsize"):
        value = constant_int(created.keyword(name))
        if value is not None:
            return value
    if created.library == "psycopg2" and len(created.node.args) >= 2:
        return constant_int(created.node.args[1])
    return None


def check_py_Call(node: ast.Call, ctx) -> None:
    created = creation(node)
    if created is None:
        return
    handler = per_request(ctx.module, node)
    loops = [loop for loop in flow.loops_around(ctx.module, node) if not retry_loop(loop)]
    if handler is not None or loops:
        where = f"request handler {handler.name}()" if handler is not None else "a loop"
        what = "a new server connection" if created.kind == "connect" else "a new pool"
        ctx.report(node, f"{what} per call of {where}: under load the backends multiply until Postgres "
                         "refuses connections (too many clients)")
        return
    size = _pool_size(created) if created.kind == "pool" else None
    if size is not None and size > ctx.max_connections:
        ctx.report(node, f"pool of up to {size} connections, above max_connections = {ctx.max_connections}: "
                         "the pool can never be filled and other clients get refused")
