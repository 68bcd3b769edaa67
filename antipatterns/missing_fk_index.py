"""Foreign key column without an index

## What it is

A child table references a parent (`messages.conversation_id REFERENCES conversations (id)`) but
no index has the foreign-key column as its leading key. Postgres requires a unique index on the
referenced (parent) columns, but it never creates one on the referencing (child) columns, so
this gap appears by default in every schema that does not add it by hand.

## Why it hurts

Inserting a child row is cheap: the foreign-key trigger probes the parent's unique index. The
reverse direction is the problem. When a parent row is deleted, or its key updated, a system
trigger runs once per affected parent row and queries the child: `SELECT 1 FROM ONLY messages x
WHERE conversation_id = $1 FOR KEY SHARE OF x` for NO ACTION/RESTRICT, or a DELETE (or UPDATE)
of the matching children for CASCADE (or SET NULL). With no index on `conversation_id`, each of
those queries is a sequential scan of the whole child table: deleting 1,000 conversations reads
the messages table 1,000 times, all inside the deleting transaction, which keeps its row locks
(and the xmin horizon) the whole time. Joins and "children of this parent" queries lack an index
path too.

## What you see under load

Deletes of parent rows (conversations, users) that take seconds or minutes although they touch a
handful of rows. `EXPLAIN ANALYZE` of the DELETE shows a cheap plan followed by a line such as
`Trigger for constraint messages_conversation_id_fkey: time=48210.512 calls=1000` that holds
almost all of the time. `pg_stat_user_tables.seq_scan` on the child rises by one per deleted
parent row and `seq_tup_read` by the child's size each time. The trigger queries are nested, so
`pg_stat_statements` shows them only with `pg_stat_statements.track = all`; by default their
time is inside the DELETE. Other sessions wait on the locked rows (`wait_event_type = 'Lock'`).

## How pglab detects it

Static: a foreign-key column (or column set) on the child table that is not the leading key of
any index on that table (schema from migrations/DDL or the live catalog with `--dsn`). Runtime:
over a window, an unindexed foreign key on a large child whose parent lost rows while the child
was scanned sequentially (`n_tup_del` on the parent, `seq_scan` / `seq_tup_read` growth on the
child), with the foreign-key check's calls and mean time where `pg_stat_statements.track = all`
shows it; over the counters' whole history (or a window of a day or more), every unindexed foreign
key on a large child, as a risk.

## The fix

Index the foreign-key column on the child, concurrently so writes continue during the build. A
composite index that leads with the FK column serves too, and is often the better choice:
`(conversation_id, created_at)` also serves "latest messages of a conversation". For a
multi-column foreign key, all its columns must lead the index.

## Example

### Naive

{fix:naive}

### Fixed

{fix:migrate}

{fix:fixed}

## References

- https://www.postgresql.org/docs/current/ddl-constraints.html#DDL-CONSTRAINTS-FK
- https://www.postgresql.org/docs/current/sql-createindex.html#SQL-CREATEINDEX-CONCURRENTLY
- https://www.postgresql.org/docs/current/using-explain.html
- https://www.postgresql.org/docs/current/monitoring-stats.html#MONITORING-PG-STAT-ALL-TABLES-VIEW
"""

CODE = "PGL024"
CATEGORY = "indexing"
STATIC_SIGNAL = "foreign-key column (or column set) that is not the leading key of any index"
RUNTIME_SIGNAL = "seq scans on the child during parent deletes/joins; FK trigger time in EXPLAIN"
FIX_HINT = "CREATE INDEX CONCURRENTLY on the FK column (or a composite index led by it)"

# -- static rule ------------------------------------------------------------

def check_schema(schema, ctx) -> None:
    for table in schema.tables.values():
        for key in table.foreign_keys:
            width = len(key.columns)
            if any(set(index.keys[:width]) == set(key.columns) for index in table.btree_indexes()):
                continue
            ctx.report(key.origin, f"foreign key {table.name}({', '.join(key.columns)}) -> {key.references} has no "
                                   f"index led by its column(s): every delete or key update on {key.references} "
                                   f"scans {table.name}",
                       evidence={"table": table.name, "columns": list(key.columns), "references": key.references})
