"""Run every runtime detector against a live database.

Two kinds of rule run here: statistics rules over a window between two snapshots (`check_stats` in
`detectors/<id>.py`), and plan rules (`check_plan`) over the generic plans of the statements that
cost the most in that window. Everything is read-only: statistics views and the catalog are read,
and plans come from plain EXPLAIN of SELECTs inside READ ONLY transactions that are rolled back.
Cheap enough to call every few seconds during a load run: one connection, a dozen small queries,
and EXPLAIN (no execution) of at most `top` statements.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import psycopg

from pglab.lab.core.errors import UserError
from pglab.lab.core.findings import Finding
from pglab.lab.core.sql import leading_columns, short
from pglab.lab.postgres.launcher import connect
from pglab.lab.runtime import registry
from pglab.lab.runtime.plans import analyze_plan, explain, is_read_only_select
from pglab.lab.runtime.stats import APPLICATION_NAME, Snapshot, Window, take_snapshot_with

TOP_STATEMENTS = 10
SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}


def _connect(dsn: str) -> psycopg.Connection[Any]:
    return connect(dsn, application_name=APPLICATION_NAME)


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
    try:
        conn = _connect(dsn)
    except UserError as error:
        refused = _refusal_findings(str(error), thresholds)
        if not refused:
            raise
        return refused, [f"no statistics read: {error}"]
    with conn:
        window = Window(before, _snapshot(conn))
        notes = list(window.after.notes)
        findings: list[Finding] = []
        for entry_id, module in registry.detector_modules().items():
            check = getattr(module, "check_stats", None)
            if check is not None:
                findings += check(window, registry.limits(entry_id, thresholds))
        if explain_top:
            plan_findings, plan_notes = _explain_top(conn, window, thresholds, top)
            findings += plan_findings
            notes += plan_notes
    return sorted(findings, key=lambda f: (SEVERITY_ORDER.get(f.severity, 3), f.code)), notes


def _refusal_findings(message: str, thresholds: Mapping[str, Mapping[str, float]] | None) -> list[Finding]:
    """Findings a refused connection is evidence of (`check_refusal` in a detector module)."""
    findings: list[Finding] = []
    for entry_id, module in registry.detector_modules().items():
        check = getattr(module, "check_refusal", None)
        if check is not None:
            findings += check(message, registry.limits(entry_id, thresholds))
    return findings


def _explain_top(conn: psycopg.Connection[Any], window: Window, thresholds: Mapping[str, Mapping[str, float]] | None,
                 top: int) -> tuple[list[Finding], list[str]]:
    table_rows = {name: table["reltuples"] for name, table in window.after.tables.items()}
    leading = leading_columns(window.after.indexes)
    findings: list[Finding] = []
    notes: list[str] = []
    chosen = [s for s in window.statements("select") if is_read_only_select(s["query"])][:top]
    for statement in chosen:
        try:
            plan = explain(conn, statement["query"], analyze=False)
        except UserError as error:
            notes.append(f"plan rules skipped one statement: {error}")
            continue
        context = {"queryid": statement["queryid"], "query": short(statement["query"], 300),
                   "calls": statement["calls"], "mean_ms": round(statement["mean_ms"], 3),
                   "total_ms": round(statement["total_exec_time"], 1)}
        found = analyze_plan(plan, table_rows, leading, thresholds, statement=context)
        subject = f"statement {statement['queryid']}"
        findings += [replace(f, source=statement["query"],
                             evidence={**f.evidence, "subject": f"{subject} {f.evidence['subject']}"})
                     for f in found]
    return findings, notes

