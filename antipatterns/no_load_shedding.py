"""Bounded pool, unbounded wait queue: no load shedding

## What it is

The pool is correctly bounded (see PGL012), but nothing bounds the queue in front of it. Every
request that finds no free connection waits for one, for as long as the pool allows (psycopg_pool
defaults: `timeout=30` seconds, `max_waiting=0`, meaning an unlimited queue), and the service
never says no. When requests arrive faster than the pool can serve them, the queue grows
without limit and every request pays for it.

## Why it hurts

Postgres is fine: the pool's N connections run queries at full speed. The service is capped at
N / (mean time a connection is held) requests per second (Little's law), and everything above
that waits in the application. A request's latency becomes its queue position divided by that
throughput plus its own query time: latency grows with the backlog, not with query cost. Clients
and load balancers give up at their own timeout and retry, adding arrivals, while the service
usually still runs each abandoned request when its turn comes: the database does work nobody
waits for, so goodput collapses while measured throughput looks unchanged. A short slowdown (a lock,
a checkpoint, a vacuum) leaves a backlog that takes minutes to drain, far longer than the cause.

## What you see under load

Requests per second flat at a plateau however many users Locust adds, while p50 and p99 climb
steadily towards the client timeout, far above the SLO; failures arrive as client timeouts, not
as fast 503s. The database looks healthy: `pg_stat_activity` shows exactly the pool's
connections, busy, no refusals, no lock waits; the queue is invisible to Postgres. The
application shows it: psycopg_pool's `get_stats()` reports high `requests_waiting` and a growing
`requests_wait_ms`.

## How pglab detects it

Static: a pool created with no acquire timeout or a long one (psycopg_pool's default 30 s),
`max_waiting=0`, and no admission control in front of the handlers (no concurrency limiter, no
503 path for `PoolTimeout`/`TooManyRequests`). Runtime: latency far above the SLO while
throughput stays flat: p99 over the SLO while requests per second stop growing with offered
load, and the app's server connections pinned at the pool size.

## The fix

Shed the excess early and cheaply, and keep serving the rest. First, a short acquire timeout (a
fraction of the SLO) and a bounded `max_waiting`, turning `PoolTimeout` and `TooManyRequests`
into 503 with `Retry-After`. Second, an adaptive concurrency limit in front of the handler, as in
Netflix's concurrency-limits: admit a request only while in-flight requests are under the limit,
otherwise answer 503 at once; raise the limit additively while admitted requests finish within
a latency target, cut it multiplicatively on a slow or failed one (AIMD; a gradient limiter
scales it by baseline latency over current latency). The limit finds the capacity on its own and
follows it when the database slows down; admitted requests keep near-normal latency. Clients
must back off with jitter, not retry at once.

## Example

### Naive

```python
pool = AsyncConnectionPool(DSN, max_size=20, open=False)  # timeout=30 s, queue unbounded

async def list_messages(conversation_id: int):
    async with pool.connection() as conn:  # waits behind everyone else, up to 30 s
        cur = await conn.execute(LIST_SQL, (conversation_id,))
        return JSONResponse(await cur.fetchall())
```

### Fixed

```python
pool = AsyncConnectionPool(DSN, max_size=20, timeout=0.5, max_waiting=50, open=False)
OVERLOADED = dict(status_code=503, headers={"Retry-After": "1"})

class AIMDLimit:  # in-flight limit: additive increase, multiplicative decrease
    def __init__(self, limit=20.0, floor=2.0, ceiling=200.0, target_s=0.3):
        self.limit, self.floor, self.ceiling, self.target_s = limit, floor, ceiling, target_s
        self.inflight = 0

    def done(self, seconds: float, ok: bool) -> None:
        self.inflight -= 1
        if ok and seconds <= self.target_s:
            self.limit = min(self.ceiling, self.limit + 1 / self.limit)  # ~ +1 per window
        else:
            self.limit = max(self.floor, self.limit * 0.9)

limiter = AIMDLimit()

async def list_messages(conversation_id: int):
    if limiter.inflight >= int(limiter.limit):
        return JSONResponse({"error": "overloaded"}, **OVERLOADED)  # shed: costs microseconds
    limiter.inflight += 1
    start, ok = time.monotonic(), False
    try:
        async with pool.connection() as conn:
            cur = await conn.execute(LIST_SQL, (conversation_id,))
            rows = await cur.fetchall()
        ok = True
        return JSONResponse(rows)
    except (PoolTimeout, TooManyRequests):
        return JSONResponse({"error": "overloaded"}, **OVERLOADED)
    finally:
        limiter.done(time.monotonic() - start, ok)
```

## References

- https://www.postgresql.org/docs/current/monitoring-stats.html#MONITORING-PG-STAT-ACTIVITY-VIEW
- https://www.postgresql.org/docs/current/runtime-config-connection.html#GUC-MAX-CONNECTIONS
- https://www.postgresql.org/docs/current/runtime-config-client.html#GUC-STATEMENT-TIMEOUT
- https://github.com/Netflix/concurrency-limits
"""

import ast

from pglab.lab.check.pools import constant_int, creation, every_acquire_has_timeout

CODE = "PGL013"
CATEGORY = "connections"
STATIC_SIGNAL = "pool with no (or a long) acquire timeout, unbounded queue, no admission limit"
RUNTIME_SIGNAL = "p99 far above the SLO while throughput stays flat; connections pinned at pool max"
FIX_HINT = "short acquire timeout plus an adaptive (AIMD/gradient) concurrency limit that sheds 503"
# The queue is in the application, invisible to Postgres (its pooled connections just look busy, on
# both sides): the lab's goodput invariant (answers within the SLO per second) stands in as the
# runtime detector; detectors/no_load_shedding.py reads the trend where windows are chained.
RUNTIME_INVARIANT = "goodput_within_slo"
# Off by default in test code and benchmark scripts (`[tool.pglab] default-per-file-ignores`): why.
OFF_IN_TEST_CODE = "a test's pool serves one test, never a queue of users"

# -- static rule ------------------------------------------------------------

LONG_WAIT = 10  # seconds: a request that waits this long for a connection has already failed its SLO
ADMISSION = ("PoolTimeout", "TooManyRequests", "Semaphore", "CapacityLimiter", "Limiter", "limiter",
             "HTTP_503", "503", "max_waiting")


def _admission_control(module) -> bool:
    """The module sheds load somewhere: catches pool timeouts, limits concurrency or answers 503."""
    for node in module.nodes:
        if isinstance(node, ast.Name | ast.Attribute) and any(word in (node.id if isinstance(node, ast.Name)
                                                                        else node.attr) for word in ADMISSION):
            return True
        if isinstance(node, ast.Constant) and node.value == 503:
            return True
    return False


def _long_wait(created, module) -> str | None:
    """Why this pool queues without bound, or None when it sheds."""
    if created.library == "psycopg_pool":
        timeout = created.keyword("timeout")
        waiting = constant_int(created.keyword("max_waiting"))
        if waiting:
            return None
        seconds = constant_int(timeout) if timeout is not None else 30
        if timeout is not None and (seconds is None or seconds < LONG_WAIT):
            return None
        return f"acquire timeout {seconds}s and an unbounded wait queue (max_waiting=0)"
    if created.library == "asyncpg":
        if every_acquire_has_timeout(module):
            return None
        return "no acquire timeout and an unbounded wait queue"
    if created.library == "sqlalchemy":
        timeout = created.keyword("pool_timeout")
        seconds = constant_int(timeout) if timeout is not None else 30
        if timeout is not None and (seconds is None or seconds < LONG_WAIT):
            return None
        return f"pool_timeout {seconds}s and no bound on waiting requests"
    return None


def check_py_Call(node: ast.Call, ctx) -> None:
    created = creation(node)
    if created is None or created.kind != "pool" or created.forwards_settings or created.null_pool(ctx.module):
        return
    reason = _long_wait(created, ctx.module)
    if reason and not _admission_control(ctx.module):
        ctx.report(node, f"pool with {reason}, and no admission limit: past capacity every request queues, "
                         "latency climbs while throughput stays flat")
