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
a bounded number of times, with no side effects outside the database inside the retried unit.
Keep such transactions short, declare read-only ones `READ ONLY`, and index what they read so
predicate locks stay narrow. When one row is the contention point, READ COMMITTED with an atomic
UPDATE or `SELECT ... FOR UPDATE` is often simpler.

## Example

### Naive

```python
def send_message(conn, user_id, conversation_id, body, tokens):
    with conn.transaction():  # the unit of work: the quota read and the insert
        used = conn.execute(
            "SELECT coalesce(sum(tokens), 0) FROM messages WHERE user_id = %s", (user_id,)
        ).fetchone()[0]
        if used + tokens > QUOTA:
            raise QuotaExceeded(user_id)
        conn.execute(
            "INSERT INTO messages (conversation_id, user_id, body, tokens) VALUES (%s, %s, %s, %s)",
            (conversation_id, user_id, body, tokens),
        )

conn.isolation_level = psycopg.IsolationLevel.SERIALIZABLE
send_message(conn, user_id, conversation_id, body, tokens)  # a 40001 becomes a 500
```

### Fixed

```python
conn.isolation_level = psycopg.IsolationLevel.SERIALIZABLE
for attempt in range(5):
    try:
        send_message(conn, user_id, conversation_id, body, tokens)  # reads and writes re-run
        break
    except (psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected):
        if attempt == 4:
            raise
        time.sleep(random.uniform(0, 0.01 * 2**attempt))  # jittered exponential backoff
```

## References

- https://www.postgresql.org/docs/current/transaction-iso.html#XACT-SERIALIZABLE
- https://www.postgresql.org/docs/current/mvcc-serialization-failure-handling.html
- https://www.postgresql.org/docs/current/errcodes-appendix.html
- https://www.psycopg.org/psycopg3/docs/api/errors.html
"""

CODE = "PGL022"
CATEGORY = "transactions"
STATIC_SIGNAL = "isolation set to SERIALIZABLE with no retry on SQLSTATE 40001"
RUNTIME_SIGNAL = "serialization failures (SQLSTATE 40001) surfacing as errors; xact_rollback growth"
FIX_HINT = "re-run the whole transaction on 40001/40P01 with jittered backoff (or lock explicitly)"
