"""The lab schema's objects, so that what a fixed side added can be taken away before the next
naive side. The two sides must differ by the fix alone, and a fix is not always an index:
count_per_request's is a table kept by triggers and their functions. Until 2026-12-01 only indexes
were taken away, so a naive side after a fixed one ran with that ledger's triggers in place.

Everything here is in the lab schema, which pglab created: nothing else is listed or dropped. A
fix that changed an existing table (a column, a constraint) would not be undone: none does today."""

from __future__ import annotations

from typing import Any

from psycopg import sql

from pglab.lab.trial import seed

# kind -> the query naming each object of that kind as DROP takes it (quoted by the server), in
# the order they are dropped: triggers before their tables, views before the tables they read,
# functions last (a trigger uses one).
OBJECTS = {
    "TRIGGER": "SELECT format('%%I ON %%I.%%I', t.tgname, n.nspname, c.relname) FROM pg_trigger t"
               " JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
               " WHERE NOT t.tgisinternal AND n.nspname = %(schema)s",
    "VIEW": "SELECT format('%%I.%%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n"
            " ON n.oid = c.relnamespace WHERE c.relkind = 'v' AND n.nspname = %(schema)s",
    "MATERIALIZED VIEW": "SELECT format('%%I.%%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n"
                         " ON n.oid = c.relnamespace WHERE c.relkind = 'm' AND n.nspname = %(schema)s",
    "TABLE": "SELECT format('%%I.%%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n"
             " ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') AND n.nspname = %(schema)s",
    "INDEX": "SELECT format('%%I.%%I', schemaname, indexname) FROM pg_indexes WHERE schemaname = %(schema)s",
    "ROUTINE": "SELECT format('%%I.%%I(%%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid))"
               " FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
               " WHERE p.prokind IN ('f', 'p') AND n.nspname = %(schema)s",
}

Objects = dict[str, set[str]]


def objects(conn: Any) -> Objects:
    """Every object of the lab schema, by kind."""
    return {kind: _named(conn, kind) for kind in OBJECTS}


def drop_added(conn: Any, before: Objects) -> None:
    """Drop what is in the lab schema now and was not `before`, kind by kind in OBJECTS' order
    (dropping a table takes its triggers and indexes along, so each kind is listed when its turn comes)."""
    for kind in OBJECTS:
        for name in sorted(_named(conn, kind) - before.get(kind, set())):
            conn.execute(sql.SQL("DROP {} IF EXISTS {}").format(sql.SQL(kind), sql.SQL(name)))


def _named(conn: Any, kind: str) -> set[str]:
    return {row[0] for row in conn.execute(OBJECTS[kind], {"schema": seed.LAB_SCHEMA})}


def index_definitions(conn: Any) -> list[str]:
    rows = conn.execute("SELECT indexdef FROM pg_indexes WHERE schemaname = %s ORDER BY indexname",
                        (seed.LAB_SCHEMA,)).fetchall()
    return [row[0] for row in rows]
