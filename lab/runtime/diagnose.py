"""Run every runtime detector against a live database.

Two kinds of rule run here: statistics rules over a window between two snapshots (`check_stats` in
`detectors/<id>.py`), and plan rules (`check_plan`) over the plans of the statements that cost the
most in that window, planned for real values where the server can give them (see `_plan`).
Everything is read-only: statistics views, the catalog and the server log are read, and plans come
from plain EXPLAIN of SELECTs inside READ ONLY transactions that are rolled back.
Cheap enough to call every few seconds during a load run: one connection, a dozen small queries,
and EXPLAIN (no execution) of at most `top` statements.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psycopg

from pglab.lab.core.errors import UserError
from pglab.lab.core.findings import Finding
from pglab.lab.core.sql import leading_columns, short
from pglab.lab.postgres.client import open_session
from pglab.lab.runtime import registry
from pglab.lab.runtime.activity import ActivitySamples
from pglab.lab.runtime.autoexplain import Sample, read_log, slowest_samples, statement_key
from pglab.lab.runtime.plans import analyze_plan, explain, explain_custom, is_read_only_select
from pglab.lab.runtime.serverlog import serialization_failures
from pglab.lab.runtime.stats import (
    DATABASE_COUNTERS,
    MARKER,
    TABLE_COUNTERS,
    Snapshot,
    Window,
    take_snapshot_with,
)
from pglab.lab.runtime.values import representative_values

TOP_STATEMENTS = 10
# A SELECT running this long when the window ends is planned too, counted or not: pg_stat_statements
# counts a statement only when it completes, and one that a statement timeout cancels never does,
# so the slowest statements of all would otherwise never be planned.
RUNNING_SECONDS = 1.0
# Which plan a plan finding judged: every one says so, since a generic plan can be far from the
# plan the application's values get.
PLAN_AUTO_EXPLAIN = "auto_explain sample"  # a slow call the server logged, with its bound values
PLAN_SAMPLED = "sampled"  # a statement text seen in pg_stat_activity, with its real values
PLAN_CUSTOM = "custom (values from pg_stats)"
PLAN_GENERIC = "generic"  # no representative value for some parameter
PLAN_NO_PARAMETERS = "custom (no parameters)"
_PARAM = re.compile(r"\$\d+")
SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}


def _connect(dsn: str) -> psycopg.Connection[Any]:
    return open_session(dsn, "diagnose")  # read-only, timeouts, application_name "pglab diagnose"


def take_snapshot(dsn: str, previous: Snapshot | None = None) -> Snapshot:
    """The statistics of the database `dsn` names, now: pass it as `before` to `run_detectors`.

    Chaining (`take_snapshot(dsn, previous=last)`) lets trend rules (no_load_shedding) compare the
    window being judged with the one before it."""
    with _connect(dsn) as conn:
        return _snapshot(conn, previous)


def _snapshot(conn: psycopg.Connection[Any], previous: Snapshot | None = None) -> Snapshot:
    try:
        return take_snapshot_with(conn, previous)
    except psycopg.Error as error:
        raise UserError(f"cannot read the server's statistics: {str(error).strip().splitlines()[0]}") from None


def run_detectors(
    dsn: str,
    before: Snapshot | None = None,
    explain_top: bool = True,
    thresholds: Mapping[str, Mapping[str, float]] | None = None,
    top: int = TOP_STATEMENTS,
) -> tuple[list[Finding], list[str]]:
    """Findings of every detector, and notes on what could not be checked.

    With `before`, cumulative counters are deltas from `before` to now; without it, totals since
    the counters began. `explain_top` also plans the `top` costliest SELECTs of the window and
    runs the plan rules over them. `thresholds` overrides detector limits by id.
    """
    result = diagnose_window(dsn, before, explain_top, thresholds, top)
    return result.findings, result.notes


@dataclass
class Diagnosis:
    findings: list[Finding]
    notes: list[str]
    window: Window | None  # None when the server refused the connection


def diagnose_window(
    dsn: str,
    before: Snapshot | None = None,
    explain_top: bool = True,
    thresholds: Mapping[str, Mapping[str, float]] | None = None,
    top: int = TOP_STATEMENTS,
    activity: ActivitySamples | None = None,
) -> Diagnosis:
    """`run_detectors`, also returning the window judged (what its counters cover, and the later
    snapshot, which the command line keeps as the next run's baseline). `activity`: pg_stat_activity
    sampled through the window, which ties statements to the sessions that sent them (n_plus_one);
    empty when nobody sampled, which rules that need it say in a note."""
    try:
        conn = _connect(dsn)
    except UserError as error:
        refused = _refusal_findings(str(error), thresholds)
        if not refused:
            raise
        return Diagnosis(refused, [f"no statistics read: {error}"], None)
    with conn:
        window = Window(before, _snapshot(conn), activity=activity)
        log = read_log(conn, before, window.after)  # read once: failures counted, auto_explain samples
        notes = list(window.after.notes)
        if log is not None:
            window.serialization_failures, unattributed = serialization_failures(
                log, window.after.settings.get("log_line_prefix"), window.after.database)
            notes += [unattributed] if unattributed else []
        else:
            notes.append(f"no server log file pglab can read as role {window.after.role!r} (it needs the logging "
                         "collector's file, or pglab's own server, and superuser or pg_read_server_files): "
                         "serialization failures (SQLSTATE 40001) were not counted, and no auto_explain "
                         "sample gave real parameter values")
        if activity is not None and not activity.samples:
            notes.append("n_plus_one did not run: it ties a repeated statement to the query it follows in one "
                         "session, through pg_stat_activity sampled during a watch window (--watch SECONDS, under "
                         "the application's load); call counts alone cannot tell a loop from independent lookups")
        findings: list[Finding] = []
        for entry_id, module in registry.detector_modules().items():
            check = getattr(module, "check_stats", None)
            if check is not None:
                findings += check(window, registry.limits(entry_id, thresholds))
        if explain_top:
            plan_findings, plan_notes = _explain_top(conn, window, thresholds, top, log or "")
            findings += plan_findings
            notes += plan_notes
    findings = sorted(findings, key=lambda f: (SEVERITY_ORDER.get(f.severity, 3), f.code))
    return Diagnosis(findings, notes, window)


def _refusal_findings(message: str, thresholds: Mapping[str, Mapping[str, float]] | None) -> list[Finding]:
    """Findings a refused connection is evidence of (`check_refusal` in a detector module)."""
    findings: list[Finding] = []
    for entry_id, module in registry.detector_modules().items():
        check = getattr(module, "check_refusal", None)
        if check is not None:
            findings += check(message, registry.limits(entry_id, thresholds))
    return findings


def _samples(window: Window) -> dict[int, str]:
    """queryid -> a statement text seen in pg_stat_activity with its values written in (clients
    that bind on the client side, or build the SQL string, send them so): the real values."""
    found: dict[int, str] = {}
    snapshots = [window.after, window.before, window.before.previous if window.before else None]
    for snapshot in snapshots:
        for row in snapshot.activity if snapshot else ():
            text = row.get("query") or ""
            if (row.get("query_id") and row.get("database") == window.after.database and MARKER not in text
                    and not _PARAM.search(text)):
                found.setdefault(row["query_id"], text)
    return found


def _plan(conn: psycopg.Connection[Any], statement: dict[str, Any], samples: dict[int, str],
          logged: dict[str, Sample]) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """(plan, which kind of plan it is, the values it was made for) for one statement: the slowest
    call auto_explain logged, re-planned for its values; else a text sampled from pg_stat_activity
    with real values; else a custom plan for values from pg_stats; else the generic plan."""
    key = statement_key(statement["query"])
    sample = logged.get(key) if key is not None else None
    if sample is not None and is_read_only_select(sample.query):
        return _replanned(conn, sample)
    sampled = next((samples[q] for q in statement.get("queryids", [statement["queryid"]]) if q in samples), None)
    if sampled is not None and is_read_only_select(sampled):
        return explain(conn, sampled, analyze=False), PLAN_SAMPLED, {}
    query = statement["query"]
    if not _PARAM.search(query):
        return explain(conn, query, analyze=False), PLAN_NO_PARAMETERS, {}
    values = representative_values(conn, query, statement["rows"] / max(statement["calls"], 1))
    if values is None:
        return explain(conn, query, analyze=False), PLAN_GENERIC, {}
    plan = explain_custom(conn, query, {number: value for number, (value, _) in values.items()})
    return plan, PLAN_CUSTOM, {f"${number}": {"value": value, "from": source}
                               for number, (value, source) in sorted(values.items())}


def _replanned(conn: psycopg.Connection[Any], sample: Sample) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """The custom plan of a logged call for its logged values (plain EXPLAIN, never run). Not the
    logged plan itself: after a few executions a prepared statement may run a generic plan, which
    guesses 10 % for `OFFSET $1` just as pglab's own generic plan would."""
    if not sample.values:
        return explain(conn, sample.query, analyze=False), PLAN_AUTO_EXPLAIN, {}
    source = f"auto_explain (a call of {sample.duration_ms:,.0f} ms)"
    return explain_custom(conn, sample.query, sample.values), PLAN_AUTO_EXPLAIN, {
        f"${number}": {"value": value, "from": source} for number, value in sorted(sample.values.items())}


def _explain_top(conn: psycopg.Connection[Any], window: Window, thresholds: Mapping[str, Mapping[str, float]] | None,
                 top: int, log: str) -> tuple[list[Finding], list[str]]:
    table_rows = {name: table["reltuples"] for name, table in window.after.tables.items()}
    leading = leading_columns(window.after.indexes)
    samples = _samples(window)
    logged = slowest_samples(log)
    findings: list[Finding] = []
    notes: list[str] = []
    statements = window.statements()  # deltas worked out once: the costliest SELECTs, and every one counted
    chosen = [s for s in statements if s["kind"] == "select" and is_read_only_select(s["query"])][:top]
    counted = {queryid for s in statements for queryid in s.get("queryids", [s["queryid"]])}
    for statement in [*chosen, *_running(window, counted)[:top]]:
        try:
            plan, kind, values = _plan(conn, statement, samples, logged)
        except UserError as error:
            notes.append(f"plan rules skipped one statement: {error}")
            continue
        context = {"queryid": statement["queryid"], "query": short(statement["query"], 300),
                   "calls": statement["calls"], "mean_ms": round(statement["mean_ms"], 3),
                   "total_ms": round(statement["total_exec_time"], 1),
                   **({"running_s": statement["running_s"]} if "running_s" in statement else {})}
        found = analyze_plan(plan, table_rows, leading, thresholds, statement=context)
        subject = f"statement {statement['queryid']}"
        findings += [replace(f, source=statement["query"], message=f"{f.message} (plan: {kind})",
                             evidence={**f.evidence, "subject": f"{subject} {f.evidence['subject']}",
                                       "plan": kind, **({"plan_values": values} if values else {})})
                     for f in found]
    return findings, notes


def _running(window: Window, counted: set[int]) -> list[dict[str, Any]]:
    """Read-only SELECTs that sessions of the database have been running for RUNNING_SECONDS or
    more and that pg_stat_statements has not counted in the window, longest first, one per
    statement; shaped like `Window.statements` rows (no completed call, so `calls` is 0)."""
    found: dict[Any, dict[str, Any]] = {}
    for row in window.sessions():
        seconds, text = row.get("query_seconds") or 0.0, row.get("query") or ""
        if (row.get("state") != "active" or seconds < RUNNING_SECONDS or row.get("query_id") in counted
                or not is_read_only_select(text)):
            continue
        key = row.get("query_id") or text
        if key not in found or seconds > found[key]["running_s"]:
            found[key] = {"query": text, "queryid": row.get("query_id") or 0, "calls": 0, "rows": 0,
                          "mean_ms": seconds * 1000, "total_exec_time": seconds * 1000,
                          "running_s": round(seconds, 1)}
    return sorted(found.values(), key=lambda statement: -statement["running_s"])


# The baseline: the last snapshot diagnose took of a server, kept on this machine (never on the
# server) so that the next run judges deltas since then instead of totals since the statistics
# were last reset, which still hold problems fixed long ago.
_BASELINE_FIELDS = ("taken_at", "version_num", "database", "role", "read_all_stats", "settings", "statements",
                    "counters_since", "log_position")


def _state_dir() -> Path:
    """$XDG_STATE_HOME/pglab (~/.local/state/pglab), else a directory of this user's in the temp dir."""
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    for candidate in (Path(state) / "pglab", Path(tempfile.gettempdir()) / f"pglab-{os.getuid()}"):
        try:
            candidate.mkdir(mode=0o700, parents=True, exist_ok=True)
            if os.access(candidate, os.W_OK):
                return candidate
        except OSError:
            continue
    raise UserError("no writable state directory for pglab's baseline (set XDG_STATE_HOME)")


def _server_identity(conn: psycopg.Connection[Any]) -> str:
    """Which server and database a baseline belongs to: the cluster's system identifier where the
    role may read it (else address, port and start time), the database and the role."""
    try:
        with conn.transaction():
            row = conn.execute(f"SELECT {MARKER} system_identifier::text FROM pg_control_system()").fetchone()
    except psycopg.Error:
        row = conn.execute(f"SELECT {MARKER} concat_ws(':', inet_server_addr(), inet_server_port(), "
                           "pg_postmaster_start_time())").fetchone()
    head = conn.execute(f"SELECT {MARKER} current_database(), current_user").fetchone()
    text = "|".join(str(part) for part in ((row or ("",))[0], *(head or ())))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _baseline_file(dsn: str) -> Path:
    with _connect(dsn) as conn:
        return _state_dir() / f"baseline-{_server_identity(conn)}.json"


def load_baseline(dsn: str) -> Snapshot | None:
    """The snapshot the previous `save_baseline` kept for this server and database, if any."""
    path = _baseline_file(dsn)
    try:
        saved = json.loads(path.read_text())
        return Snapshot(**{name: saved[name] for name in _BASELINE_FIELDS}, database_stats=saved["database_stats"],
                        tables=saved["tables"], indexes=saved["indexes"], activity=[], blocked=[], foreign_keys=[],
                        predicate_locks=0)
    except (OSError, ValueError, KeyError, TypeError):
        return None  # none yet, or unreadable: judge totals, and the next run has one


def save_baseline(dsn: str, snapshot: Snapshot) -> None:
    """Keep the counters of `snapshot` for the next run against the same server and database."""
    saved = {name: getattr(snapshot, name) for name in _BASELINE_FIELDS}
    saved["database_stats"] = {name: snapshot.database_stats.get(name) for name in DATABASE_COUNTERS}
    saved["tables"] = {name: {key: row.get(key) for key in (*TABLE_COUNTERS, "name")}
                       for name, row in snapshot.tables.items()}
    saved["indexes"] = [{"name": row["name"], "idx_scan": row["idx_scan"]} for row in snapshot.indexes]
    path = _baseline_file(dsn)
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(saved, default=str))
    partial.replace(path)


def window_text(window: Window | None, watch: float | None = None) -> str:
    """What the counters judged cover, in words: the clean message and the reports say it."""
    if window is None:
        return "no statistics read"
    if watch:
        return f"over {watch:g} s"
    seconds = window.describe()["seconds"]
    span = "" if seconds is None else f", {seconds:,.0f} s"
    if window.before is not None:
        return f"since pglab's previous run{span}"
    return f"since the statistics began{span}"
