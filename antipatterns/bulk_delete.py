"""Retention as one giant DELETE (or none at all)

## What it is

Old data is purged by a single statement such as `DELETE FROM messages WHERE created_at < now() -
interval '90 days'`, run nightly against millions of rows in one transaction, often with no index
on `created_at`. The twin mistake is having no retention at all: the table and its indexes grow
forever, and one day someone runs the giant DELETE by hand.

## Why it hurts

DELETE does not remove rows. It finds them (without an index on the time column, by reading the
whole table), then marks each one dead by setting its `xmax`, which also row-locks it until
commit. Every touched page is dirtied and WAL-logged, with a full-page image on the first change
after each checkpoint, so a big purge is a burst of WAL and writes. The statement is one
transaction for its whole run: concurrent UPDATE/DELETE of those rows wait, and its snapshot holds
back the xmin horizon so VACUUM cannot clean anything in the database that died after it started.
Per-row triggers and foreign keys run per deleted row (an unindexed referencing column means one
child-table scan per row). Cancel it at 90 % and everything rolls back. After COMMIT, millions of
dead tuples appear at once: VACUUM must visit them and scan every index to remove their entries,
and the space is reused, not returned (only trailing empty pages are truncated). With no
retention, every scan, VACUUM and cache working set grows without bound instead.

## What you see under load

One DELETE `active` in `pg_stat_activity` for minutes, with an old `xact_start` and `backend_xmin`;
other sessions waiting with `wait_event_type = 'Lock'` on its `transactionid`. In
`pg_stat_statements` a single call with a huge `total_exec_time`, `rows`, `shared_blks_dirtied`
and `wal_bytes`. `pg_stat_user_tables.n_dead_tup` jumps by millions, then autovacuum runs for a
long time; p99 of unrelated queries rises with the I/O and WAL burst; replicas lag
(`pg_stat_replication.replay_lag`); the log may warn that checkpoints occur too frequently.

## How pglab detects it

Static: a DELETE with a range predicate on a time or id column (`created_at < ...`) and no
batching: the rows are not bounded by a `LIMIT` subquery and the statement is not repeated in a
loop. Runtime: a long-running DELETE, lock waits behind it, and a jump in `n_dead_tup` (and
`seq_tup_read` when the time column has no index) on the table between two snapshots.

## The fix

Delete in batches on an indexed time column: each batch removes a few thousand of the oldest
rows in its own short transaction, and the loop repeats until a batch deletes nothing (pause
between batches if replicas or vacuum fall behind). Locks are brief, vacuum keeps up, and a
cancelled run keeps the batches already done. For large, append-only time series, partition by
time and retire whole partitions instead: `ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY`
then `DROP TABLE` removes the files, with no dead tuples and no VACUUM.

## Example

### Naive

{fix:naive}

### Fixed

{fix:migrate}

{fix:fixed}

```python
with psycopg.connect(dsn, autocommit=True) as conn:  # each batch is its own short transaction
    while conn.execute(DELETE_ONE_BATCH, {"now": now, "keep": "30 days"}).rowcount:  # the DELETE above
        pass
```

## References

- https://www.postgresql.org/docs/current/sql-delete.html
- https://www.postgresql.org/docs/current/routine-vacuuming.html
- https://www.postgresql.org/docs/current/ddl-partitioning.html
- https://www.postgresql.org/docs/current/monitoring-stats.html#MONITORING-PG-STAT-ALL-TABLES-VIEW
"""

from pglab.lab.check import sqlnodes as n
from pglab.lab.check.shape import equality_columns

CODE = "PGL021"
CATEGORY = "writes"
STATIC_SIGNAL = "DELETE with a range predicate (e.g. created_at < ...) and no batching"
RUNTIME_SIGNAL = "long-running DELETE, lock waits behind it, n_dead_tup jump on the table"
FIX_HINT = "delete in small batches on an indexed time column, or drop old time partitions"

# -- static rule ------------------------------------------------------------

RANGE = frozenset({"<", "<=", ">", ">="})


def _batched(node: dict) -> bool:
    """The DELETE takes a bounded slice: a subquery (or USING subquery) with a LIMIT."""
    return any(kind == "SelectStmt" and body.get("limitCount") for kind, body in n.walk(node))


TEMPORAL = ("timestamp", "timestamptz", "date", "time")


def _within_one_parent(body: dict, columns: list[str], schema) -> bool:
    """`WHERE playlist_id = $1 AND position >= $2`: a range over a non-temporal column inside the
    rows of one parent (another column pinned to a value) is a slice of one list, not retention
    over the table. Needs the schema to know the column is not a time."""
    table_name = n.relation_name(body.get("relation", {}))
    table = schema.table(table_name)
    if table is None or not all(column in table.columns for column in columns):
        return False
    if any(table.columns[column].split(" ")[0].startswith(TEMPORAL) for column in columns):
        return False
    scope = n.range_tables([{"RangeVar": body.get("relation", {})}])
    pinned = equality_columns(body.get("whereClause"), scope).get(table_name, set())
    return bool(pinned - set(columns))


QUERY_KINDS = frozenset({"DeleteStmt"})  # check_query is called only for these statements


def check_query(query, ctx) -> None:
    if query.kind != "DeleteStmt" or _batched(query.body):
        return
    for term in n.conjuncts(query.body.get("whereClause")):
        kind, expr = n.unwrap(term)
        if kind != "A_Expr" or not (n.operator(expr) in RANGE or expr.get("kind") == "AEXPR_BETWEEN"):
            continue
        columns = [n.column(side) for side in (expr.get("lexpr"), expr.get("rexpr"))]
        if any(columns) and not _within_one_parent(query.body, [c[1] for c in columns if c], ctx.schema):
            table = n.relation_name(query.body.get("relation", {}))
            ctx.report(term, f"one DELETE of every {table} row in a range: a long transaction that holds locks, "
                             "bloats the table with dead tuples and floods WAL and replicas")
            return
