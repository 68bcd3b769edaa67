"""The plugin's second source: what the server ran in the test's database (pg_stat_statements),
for statements other processes sent (a service the test started, a driver pglab does not wrap).

A snapshot of the calls per statement before the test and one after give what ran during it;
the client's own statements (those the capture already has, driver transaction control included)
are subtracted shape by shape, so nothing is counted twice. The server knows no call site: these
statements are reported as coming from another process.
"""

from __future__ import annotations

from collections import Counter

import psycopg
from psycopg.conninfo import conninfo_to_dict

from pglab.lab.plugin.records import ConnectionInfo, Statement
from pglab.lab.plugin.shapes import shape_of

SERVER_CONNECTION = -1  # the "connection" of statements pg_stat_statements saw from elsewhere
_STATEMENTS_SQL = """
SELECT queryid, query, calls FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND toplevel
  AND query NOT LIKE '%pg_stat_statements%'
"""

Snapshot = dict[str, tuple[str, int]]


def snapshot(dsn: str, notes: set[str]) -> Snapshot | None:
    """queryid -> (text, calls) in the database of `dsn`; None (and a note) when the extension is
    not there."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        try:
            rows = conn.execute(_STATEMENTS_SQL).fetchall()
        except psycopg.Error as error:
            notes.add(f"server capture off: {str(error).strip().splitlines()[0]}")
            return None
    return {str(queryid): (query, int(calls)) for queryid, query, calls in rows}


def dsn_dbname(dsn: str) -> str:
    return str(conninfo_to_dict(dsn).get("dbname", ""))


def server_statements(dsn: str, before: Snapshot, client: list[Statement], connections: dict[int, ConnectionInfo],
                      notes: set[str]) -> list[Statement]:
    """What the server ran in the test's database beyond what this process sent: the calls
    counted during the test, minus the client's own, per shape. Transaction control and SET are
    dropped: no budget counts them, whoever sent them."""
    after = snapshot(dsn, notes) or {}
    server: Counter[str] = Counter()
    texts: dict[str, str] = {}
    for queryid, (query, calls) in after.items():
        delta = calls - before.get(queryid, ("", 0))[1]
        shape = shape_of(query, False)
        if delta > 0 and shape.statement_class != "control":
            server[shape.fingerprint] += delta
            texts.setdefault(shape.fingerprint, query)
    dbname = dsn_dbname(dsn)
    for statement in client:
        if connections[statement.connection].dbname == dbname:
            server[shape_of(statement.sql, statement.has_params).fingerprint] -= statement.batch
    return [Statement(sql=texts[fp], has_params=False, params=None, chain=(), start=0.0, duration=0.0,
                      connection=SERVER_CONNECTION, batch=calls, source="server")
            for fp, calls in server.items() if calls > 0]


def enable(dsn: str, notes: set[str]) -> None:
    """Create the extension in the template, when the server preloads it."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        preload = conn.execute("SHOW shared_preload_libraries").fetchone()
        if preload is None or "pg_stat_statements" not in preload[0]:
            notes.add("server capture off: pg_stat_statements is not in shared_preload_libraries")
            return
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
