"""Statistics snapshots and the window between two of them.

Most of Postgres' statistics are cumulative counters (calls, rows, scans, commits), so a rate or a
ratio only means something over a window: `Window(before, after)` turns two snapshots into deltas
(with no `before`, everything since the counters began). Gauges (sessions, locks, settings,
catalog facts) are read from the later snapshot.

Every query here is a read of a statistics view or the catalog, tagged with `MARKER` so that the
statement detectors never judge pglab's own queries (inside the statement, after its first
keyword: pg_stat_statements keeps no comment that comes before the statement). Version differences are absorbed here:
pg_stat_statements renamed `total_time` to `total_exec_time` (13) and the block timing columns (17);
the rows are read with `SELECT *` and normalised, so no column list breaks on either side.

Timing: pg_stat_statements counts a statement when it ends, but each backend flushes its table and
database counters at most once a second, and an idle one up to about ten seconds late
(PostgreSQL 15+). A window of a few seconds over a steady load sees them; a test that wants them
now ends its work with `SELECT pg_stat_force_next_flush()`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import psycopg
from pglast import parse_sql
from pglast.parser import ParseError
from psycopg import sql
from psycopg.rows import dict_row

from pglab.lab.core.sql import INDEX_COLUMNS, LOCKED_RELATIONS_SQL, statement_kind

if TYPE_CHECKING:
    from pglab.lab.runtime.activity import ActivitySamples

MARKER = "/* pglab diagnose */"
STATEMENT_COUNTERS = ("calls", "total_exec_time", "rows", "shared_blks_hit", "shared_blks_read")
TABLE_COUNTERS = ("seq_scan", "seq_tup_read", "idx_scan", "idx_tup_fetch", "n_tup_ins", "n_tup_upd",
                  "n_tup_del", "n_tup_hot_upd")
DATABASE_COUNTERS = ("xact_commit", "xact_rollback", "deadlocks", "tup_deleted", "tup_updated", "tup_inserted")
SETTINGS = ("max_connections", "superuser_reserved_connections", "reserved_connections", "statement_timeout",
            "idle_in_transaction_session_timeout", "lock_timeout", "transaction_timeout",
            "default_transaction_isolation", "shared_preload_libraries", "log_line_prefix")
_RENAMED = {"total_time": "total_exec_time", "mean_time": "mean_exec_time"}

_TABLES = f"""SELECT {MARKER}
       s.relname AS name, s.schemaname AS schema, s.seq_scan, s.seq_tup_read, coalesce(s.idx_scan, 0) AS idx_scan,
       coalesce(s.idx_tup_fetch, 0) AS idx_tup_fetch, s.n_tup_ins, s.n_tup_upd, s.n_tup_del, s.n_tup_hot_upd,
       s.n_live_tup, s.n_dead_tup,
       (CASE WHEN c.reltuples >= 0 THEN c.reltuples ELSE s.n_live_tup END)::bigint AS reltuples
FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid"""
_INDEXES = f"""SELECT {MARKER}
       s.relname AS table_name, s.indexrelname AS name, s.idx_scan, i.indisunique AS is_unique,
       i.indisprimary AS is_primary, i.indpred IS NOT NULL AS is_partial,
       EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid) AS backs_constraint,
       {INDEX_COLUMNS} AS columns, pg_get_indexdef(i.indexrelid) AS definition, pg_relation_size(i.indexrelid) AS bytes
FROM pg_stat_user_indexes s JOIN pg_index i ON i.indexrelid = s.indexrelid
WHERE NOT (i.indrelid = ANY(%(locked)s::oid[]) OR i.indexrelid = ANY(%(locked)s::oid[]))"""
_ACTIVITY = f"""SELECT {MARKER}
       pid, datname AS database, usename AS role, application_name, backend_type, state, wait_event_type,
       wait_event, query, {{query_id}} AS query_id, extract(epoch FROM now() - xact_start)::float8 AS xact_seconds,
       extract(epoch FROM now() - query_start)::float8 AS query_seconds,
       extract(epoch FROM now() - state_change)::float8 AS state_seconds,
       extract(epoch FROM xact_start)::float8 AS xact_start, extract(epoch FROM query_start)::float8 AS query_start
FROM pg_stat_activity WHERE pid <> pg_backend_pid()"""
_BLOCKED = f"""SELECT {MARKER}
       a.pid, pg_blocking_pids(a.pid) AS blockers, a.query, a.wait_event,
       extract(epoch FROM now() - a.state_change)::float8 AS wait_seconds,
       (SELECT l.relation::regclass::text FROM pg_locks l WHERE l.pid = a.pid AND l.relation IS NOT NULL
           AND (NOT l.granted OR l.locktype = 'tuple') ORDER BY l.granted LIMIT 1) AS relation
FROM pg_stat_activity a WHERE a.wait_event_type = 'Lock' AND a.datname = current_database()"""
_FOREIGN_KEYS = f"""SELECT {MARKER}
       c.conname AS name, t.relname AS table_name, c.confrelid::regclass::text AS referenced,
       array(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY AS k(num, ord)
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.num ORDER BY k.ord) AS columns,
       EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.conrelid AND i.indpred IS NULL
               AND (string_to_array(i.indkey::text, ' ')::int2[])[1:cardinality(c.conkey)] @> c.conkey
               AND c.conkey @> (string_to_array(i.indkey::text, ' ')::int2[])[1:cardinality(c.conkey)]) AS indexed,
       greatest(t.reltuples, 0)::bigint AS table_rows
FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE c.contype = 'f' AND n.nspname NOT IN ('pg_catalog', 'information_schema')"""


@dataclass
class Snapshot:
    """What the server's statistics said at one moment. `statements` is None when
    pg_stat_statements cannot be read (the reason is in `notes`)."""

    taken_at: float
    version_num: int
    database: str
    role: str
    read_all_stats: bool
    settings: dict[str, str]
    database_stats: dict[str, Any]
    statements: dict[str, dict[str, Any]] | None  # normalised text -> entry
    tables: dict[str, dict[str, Any]]
    indexes: list[dict[str, Any]]
    activity: list[dict[str, Any]]
    blocked: list[dict[str, Any]]
    foreign_keys: list[dict[str, Any]]
    predicate_locks: int
    counters_since: float | None = None  # when the cumulative counters began (stats_reset or server start)
    log_position: tuple[str, int] | None = None  # (server log file, its size) when pglab may read it
    notes: list[str] = field(default_factory=list)
    previous: Snapshot | None = None  # the snapshot before this one, when the caller chains them

    @property
    def max_client_connections(self) -> int:
        """max_connections minus the slots reserved for superusers (and, from 16, for reserved roles)."""
        reserved = sum(int(self.settings.get(name) or 0)
                       for name in ("superuser_reserved_connections", "reserved_connections"))
        return int(self.settings["max_connections"]) - reserved


def dict_rows(conn: psycopg.Connection[Any], query: str, params: Any = None) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cursor:
        return list(cursor.execute(query, params).fetchall())


def normalised(query: str) -> str:
    """The key one statement's pg_stat_statements entries share: its text with whitespace collapsed.
    psycopg sends Python ints as int2, int4 or int8 by value, so one statement gets one queryid per
    combination of parameter types; its text is the same for all of them."""
    return " ".join(query.split())


def _read_statements(conn: psycopg.Connection[Any], database: str) -> tuple[dict[str, dict[str, Any]] | None, str]:
    """pg_stat_statements for this database, top-level statements only, one entry per normalised
    text (see `normalised`); or None and the reason. Nested statements (`toplevel = false`: the
    foreign-key checks Postgres runs inside an INSERT, statements inside functions) are not what the
    application sent, and judging them as if it had is how a batched INSERT looks like an N+1."""
    found = dict_rows(conn, f"""SELECT {MARKER} n.nspname AS schema FROM pg_extension e
        JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_stat_statements'""")
    if not found:
        return None, (f"pg_stat_statements is not installed in database {database!r} (it needs "
                      "shared_preload_libraries and CREATE EXTENSION pg_stat_statements): statement-level "
                      "detectors did not run")
    view = sql.Identifier(found[0]["schema"], "pg_stat_statements").as_string(conn)
    try:
        with conn.transaction():
            rows = dict_rows(conn, f"""SELECT {MARKER} * FROM {view}
                WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())""")
    except psycopg.Error as error:
        reason = str(error).strip().splitlines()[0]
        return None, f"pg_stat_statements cannot be read ({reason}): statement-level detectors did not run"
    merged: dict[str, dict[str, Any]] = {}
    for row in sorted(rows, key=lambda row: row.get("queryid") or 0):
        row = {_RENAMED.get(key, key): value for key, value in row.items()}
        if row.get("queryid") is None or row.get("toplevel") is False:
            continue
        key = normalised(row.get("query") or "")
        entry = merged.setdefault(key, {"queryid": row["queryid"], "queryids": [], "query": row.get("query") or "",
                                        **dict.fromkeys(STATEMENT_COUNTERS, 0)})
        if row["queryid"] not in entry["queryids"]:
            entry["queryids"].append(row["queryid"])
        for counter in STATEMENT_COUNTERS:
            entry[counter] += row.get(counter) or 0
    return merged, ""


def take_snapshot_with(conn: psycopg.Connection[Any], previous: Snapshot | None = None) -> Snapshot:
    """A snapshot over an open connection (autocommit); see `pglab.lab.runtime.diagnose.take_snapshot`."""
    head = dict_rows(conn, f"""SELECT {MARKER} extract(epoch FROM clock_timestamp())::float8 AS now,
        current_setting('server_version_num')::int AS version, current_database() AS database,
        current_user AS role, pg_has_role(current_user, 'pg_read_all_stats', 'MEMBER') AS read_all_stats""")[0]
    notes = []
    if not head["read_all_stats"]:
        notes.append(f"role {head['role']!r} is not a member of pg_read_all_stats: other roles' sessions and "
                     "statement texts are hidden, so these results are partial")
    # reset_val: what a new session of this database and role starts with, not what pglab's own
    # session has SET (its timeouts)
    settings = {row["name"]: row["setting"] for row in dict_rows(
        conn, f"SELECT {MARKER} name, reset_val AS setting FROM pg_settings WHERE name = ANY(ARRAY{list(SETTINGS)!r})")}
    statements, note = _read_statements(conn, head["database"])
    if note:
        notes.append(note)
    locked = dict_rows(conn, LOCKED_RELATIONS_SQL)
    locked_oids, locked_names = [row["oid"] for row in locked], {row["relname"] for row in locked}
    if locked_names:
        notes.append(f"left out, locked by another session (ACCESS EXCLUSIVE): {', '.join(sorted(locked_names))}; "
                     "the results cover the other tables")
    database_stats = dict_rows(conn, f"SELECT {MARKER} * FROM pg_stat_database WHERE datname = current_database()")[0]
    predicate_locks = dict_rows(conn, f"""SELECT {MARKER} count(*) AS n FROM pg_locks WHERE mode = 'SIReadLock'
        AND database = (SELECT oid FROM pg_database WHERE datname = current_database())""")[0]["n"]
    return Snapshot(
        taken_at=head["now"], version_num=head["version"], database=head["database"], role=head["role"],
        read_all_stats=head["read_all_stats"], settings=settings, database_stats=database_stats,
        statements=statements,
        tables={row["name"]: row for row in dict_rows(conn, _TABLES) if row["name"] not in locked_names},
        indexes=dict_rows(conn, _INDEXES, {"locked": locked_oids}), activity=dict_rows(conn, _ACTIVITY.format(
            query_id="query_id" if head["version"] >= 140000 else "NULL::bigint")),
        blocked=_with_targets(dict_rows(conn, _BLOCKED)),
        foreign_keys=[row for row in dict_rows(conn, _FOREIGN_KEYS) if row["table_name"] not in locked_names],
        predicate_locks=int(predicate_locks),
        counters_since=_counters_since(conn), log_position=_log_position(conn), notes=notes,
        previous=_forget_previous(previous),
    )


def _counters_since(conn: psycopg.Connection[Any]) -> float | None:
    """When this database's cumulative counters began: their last reset, else (never reset) the
    server's start, which is a lower bound since PostgreSQL 15 keeps statistics across clean restarts."""
    row = dict_rows(conn, f"""SELECT {MARKER}
        extract(epoch FROM coalesce(stats_reset, pg_postmaster_start_time()))::float8
        AS since FROM pg_stat_database WHERE datname = current_database()""")
    return row[0]["since"] if row else None


# Where the server writes its log: the logging collector's current file, or, for the servers pglab
# starts itself, the file its keeper sends the server's stderr to (beside the data directory).
_LOG_FILES = f"""SELECT {MARKER} path FROM (VALUES (1, pg_current_logfile()),
    (2, current_setting('data_directory') || '/../postgres.log')) AS c(o, path) WHERE path IS NOT NULL ORDER BY o"""


def _log_position(conn: psycopg.Connection[Any]) -> tuple[str, int] | None:
    """(the server log file, its size now), when this role may read it (superuser or
    pg_read_server_files); None otherwise. Reading a file is read-only."""
    try:
        with conn.transaction():
            for row in dict_rows(conn, _LOG_FILES):
                size = dict_rows(conn, f"SELECT {MARKER} (pg_stat_file(%s, true)).size", (row["path"],))
                if size and size[0]["size"] is not None:
                    return row["path"], int(size[0]["size"])
    except psycopg.Error:
        return None
    return None


def _forget_previous(previous: Snapshot | None) -> Snapshot | None:
    """Keep one step of history: a chain of snapshots taken every few seconds must not grow."""
    if previous is not None and previous.previous is not None:
        previous = replace(previous, previous=None)
    return previous


@lru_cache(maxsize=1024)
def statement_target(query: str) -> str | None:
    """The table an INSERT, UPDATE or DELETE writes: where a session waiting on a row lock is
    waiting, when pg_locks shows only the transaction it waits for (as with multixacts)."""
    try:
        parsed = parse_sql(query)
    except ParseError:
        return None
    relation = getattr(parsed[0].stmt, "relation", None) if len(parsed) == 1 else None
    return getattr(relation, "relname", None)


def _with_targets(blocked: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**row, "relation": row["relation"] or statement_target(row["query"] or "")} for row in blocked]


def _delta(after: dict[str, Any], before: dict[str, Any] | None, counters: tuple[str, ...]) -> dict[str, Any]:
    """`after` with its counters turned into increases since `before` (a counter that went down
    was reset, and then its current value is the increase)."""
    result = dict(after)
    for counter in counters:
        now = after.get(counter) or 0
        then = (before.get(counter) or 0) if before else 0
        result[counter] = now - then if now >= then else now
    return result


@dataclass
class Window:
    """The interval between two snapshots; with no `before`, since the counters began.

    `serialization_failures` is filled in by whoever can read the server log (see `autoexplain.read_log`);
    None means nobody could count them. `activity` is pg_stat_activity sampled through the window
    (`pglab.lab.runtime.activity`), when the caller sampled it."""

    before: Snapshot | None
    after: Snapshot
    serialization_failures: int | None = None
    activity: ActivitySamples | None = None

    @property
    def seconds(self) -> float | None:
        return self.after.taken_at - self.before.taken_at if self.before else None

    @property
    def since(self) -> float | None:
        """When the window began: the earlier snapshot, else when the counters began."""
        return self.before.taken_at if self.before else self.after.counters_since

    def describe(self) -> dict[str, Any]:
        """What the cumulative counters judged here cover: every report states it, because a
        window since the last statistics reset still holds problems fixed long ago."""
        since = self.since
        return {"since": since, "seconds": None if since is None else round(self.after.taken_at - since, 1),
                "counters": "deltas between two snapshots" if self.before else "totals since the statistics began"}

    def statements(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Top-level statements that ran in the window (counters as deltas), pglab's own left out,
        one per normalised text; each has `kind` and `mean_ms`. Empty when pg_stat_statements is
        unavailable."""
        if self.after.statements is None:
            return []
        earlier = self.before.statements or {} if self.before else {}
        result = []
        for key, now in self.after.statements.items():
            if MARKER in now["query"]:
                continue
            entry = _delta(now, earlier.get(key), STATEMENT_COUNTERS)
            if entry["calls"] <= 0:
                continue
            entry["kind"] = statement_kind(entry["query"])
            entry["mean_ms"] = entry["total_exec_time"] / entry["calls"]
            if kind is None or entry["kind"] == kind:
                result.append(entry)
        return sorted(result, key=lambda entry: -entry["total_exec_time"])

    def tables(self) -> list[dict[str, Any]]:
        earlier = self.before.tables if self.before else {}
        return [_delta(now, earlier.get(name), TABLE_COUNTERS) for name, now in self.after.tables.items()]

    def index_scans(self) -> dict[str, float]:
        """index name -> scans in the window."""
        earlier = {row["name"]: row for row in self.before.indexes} if self.before else {}
        return {row["name"]: _delta(row, earlier.get(row["name"]), ("idx_scan",))["idx_scan"]
                for row in self.after.indexes}

    def database(self) -> dict[str, Any]:
        return _delta(self.after.database_stats, self.before.database_stats if self.before else None,
                      DATABASE_COUNTERS)

    @property
    def transactions(self) -> int:
        """Transactions of the database in the window, less pglab's own snapshot queries (each an
        autocommit transaction of its own, counted through their marker in pg_stat_statements)."""
        delta = self.database()
        total = int(delta["xact_commit"] + delta["xact_rollback"])
        return max(total - self._own_calls(), 1) if total else 0

    def _own_calls(self) -> int:
        if self.after.statements is None:
            return 0
        earlier = self.before.statements or {} if self.before else {}
        return int(sum(_delta(now, earlier.get(key), ("calls",))["calls"]
                       for key, now in self.after.statements.items() if MARKER in now["query"]))

    def sessions(self, all_databases: bool = False) -> Iterator[dict[str, Any]]:
        """Client sessions of this database (of every database with `all_databases`), pglab's left out."""
        for row in self.after.activity:
            if row["backend_type"] != "client backend" or MARKER in (row["query"] or ""):
                continue
            if row["application_name"] == APPLICATION_NAME:
                continue
            if all_databases or row["database"] == self.after.database:
                yield row

    def preceding(self) -> Window | None:
        """The window just before this one, when `before` was taken with `previous=`."""
        if self.before is None or self.before.previous is None:
            return None
        return Window(self.before.previous, self.before)


APPLICATION_NAME = "pglab diagnose"


def loop_evidence(window: Window, statement: dict[str, Any], min_ratio: float) -> dict[str, Any] | None:
    """Why `statement` looks like it runs inside a loop, or None: its calls are a multiple of all
    the transactions in the window, so units of work run it many times each.

    pg_stat_statements does not say which statement's rows drive another's calls: two statements
    whose counts happen to line up (a list query, and lookups from an unrelated thread) look just
    like a loop and its parent. Only something that ties the calls together (a transaction, a
    session, a call site, as the pytest plugin and the lab capture them) can name the parent, so
    this rule names none."""
    transactions = window.transactions
    if transactions and statement["calls"] >= min_ratio * transactions:
        return {"transactions": transactions, "calls_per_transaction": round(statement["calls"] / transactions, 1)}
    return None


def single_row_loops(window: Window, kind: str,
                     limits: dict[str, float]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """Statements of `kind` (insert, update, ...) that write about one row per call, called often
    and in step with a loop: the shape shared by fan-out inserts and per-row updates. Yields each
    statement with the loop evidence."""
    for statement in window.statements(kind):
        calls = statement["calls"]
        if calls < limits["min_calls"] or statement["rows"] > limits["max_rows_per_call"] * calls:
            continue
        evidence = loop_evidence(window, statement, limits["min_ratio"])
        if evidence is not None:
            yield statement, evidence
