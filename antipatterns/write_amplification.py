"""Redundant and unused indexes on a write-heavy table

## What it is

A hot table carries indexes that earn nothing: exact duplicates, an index whose columns are a
leading prefix of another (`(conversation_id)` next to `(conversation_id, created_at)`), a copy
of the primary key, or an index no query uses. They pile up from ORM defaults, "just in case"
migrations and fixes that added a better index without removing the old one.

## Why it hurts

Every INSERT must add an entry to every index of the table: a B-tree descent, a leaf page
change (sometimes a page split) and a WAL record per index. An UPDATE can skip the indexes only
when it is a HOT (heap-only tuple) update: no indexed column changed and the new version fits
on the same heap page. Otherwise it inserts a new entry into every index, including those whose
columns did not change. So an index on a frequently updated column (`edited_at`, `read_at`,
`last_seen_at`) does not only cost its own maintenance: it turns those updates non-HOT and makes
them write to all the other indexes too. More indexes mean more WAL, more dirty pages to flush at
checkpoints, more shared buffers spent on index pages instead of data, and longer VACUUMs, which
must scan every index to remove dead entries. Reads gain nothing from a duplicate, and little
from a prefix index that the wider index already serves.

## What you see under load

Write latency and WAL volume above what the rows justify: high `mean_exec_time` and `wal_bytes`
per call for INSERT/UPDATE in `pg_stat_statements`, insert throughput that plateaus early, and
indexes whose total size rivals or exceeds the table's. `pg_stat_user_indexes.idx_scan` stays at
0 for some indexes of hot tables; `pg_stat_user_tables` shows a low HOT ratio (`n_tup_hot_upd /
n_tup_upd`). Autovacuum runs on the table take long, much of it in the `vacuuming indexes` phase of
`pg_stat_progress_vacuum`.

## How pglab detects it

Static: overlapping indexes in the schema: two indexes on the same columns, or one whose key
columns are a leading prefix of another's, with the same access method and partial predicate
(the one to drop is never one that enforces a constraint). Runtime: on a write-heavy table (1,000
index-writing row changes in the window, or 50 a second over at least 3 seconds), an index whose
key columns lead another of the same kind, whatever the window, or one with `idx_scan = 0` over
counters that cover at least a day; the HOT-update ratio (`n_tup_hot_upd / n_tup_upd`) is reported
with it. The lab measures the harm itself: the WAL bytes the service's statements write per
successful write request (`wal_bytes` in `pg_stat_statements`), against a budget per message.

## The fix

Drop the redundant indexes, one `DROP INDEX CONCURRENTLY` each (it cannot run inside a
transaction block). Before dropping an "unused" one, check `idx_scan` on every replica (stats are
per server) and since `stats_reset`, and keep indexes that back a constraint (primary key,
unique, exclusion): a unique index enforces correctness even when no query scans it. Do not index
a frequently updated column unless a query needs it; for update-heavy tables a lower `fillfactor`
leaves room on each page for HOT updates.

## Example

### Naive

{fix:setup}

{fix:naive}

### Fixed

{fix:migrate}

{fix:fixed}

## References

- https://www.postgresql.org/docs/current/storage-hot.html
- https://www.postgresql.org/docs/current/sql-dropindex.html
- https://www.postgresql.org/docs/current/monitoring-stats.html#MONITORING-PG-STAT-ALL-INDEXES-VIEW
- https://www.postgresql.org/docs/current/indexes-multicolumn.html
"""

from pglab.lab.check.schema import Origin

CODE = "PGL023"
CATEGORY = "writes"
STATIC_SIGNAL = "overlapping indexes in the schema (duplicates, or one a leading prefix of another)"
RUNTIME_SIGNAL = "idx_scan = 0 on indexes of write-heavy tables; low HOT-update ratio"
FIX_HINT = "DROP INDEX CONCURRENTLY the duplicate, prefix and unused indexes (keep constraint ones)"

# -- static rule ------------------------------------------------------------

def _redundant(index, other) -> bool:
    """`index` adds nothing `other` does not: same method and predicate, and its keys are a
    leading prefix of (or equal to) `other`'s. A unique index is never redundant: it is a rule."""
    if index is other or index.unique or index.primary:
        return False
    if index.method != other.method or index.predicate != other.predicate:
        return False
    if other.keys[: len(index.keys)] != index.keys:
        return False
    if len(index.keys) == len(other.keys) and not (other.unique or other.primary):
        return _order(index) > _order(other)  # of two identical indexes, the later one is the extra
    return True


def _order(index) -> tuple:
    origin = index.origin or Origin("", 0, 0)
    return origin.path, origin.line, index.name


def check_schema(schema, ctx) -> None:
    for table in schema.tables.values():
        for index in table.indexes.values():
            cover = next((other for other in table.indexes.values() if _redundant(index, other)), None)
            if cover is not None:
                ctx.report(index.origin, f"index {index.name} on {table.name} ({', '.join(index.keys)}) is "
                                         f"covered by {cover.name}: every write maintains both, no read needs it",
                           evidence={"table": table.name, "index": index.name, "covered_by": cover.name})
