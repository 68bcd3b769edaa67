"""bulk_delete at run time: DELETEs that remove huge numbers of rows per statement, or run long.

One giant DELETE holds its locks and its snapshot for its whole run, bloats the table with dead
tuples at once and floods WAL; batches of a few thousand rows on an indexed column do not.
"""

from __future__ import annotations

from pglab.lab.core.findings import Finding
from pglab.lab.core.sql import short, statement_kind
from pglab.lab.runtime.registry import finding
from pglab.lab.runtime.stats import Window

THRESHOLDS = {
    "min_rows_per_call": 10_000,
    "min_running_seconds": 5,  # a DELETE seen running this long in pg_stat_activity
}


def _dead_tuples(window: Window) -> dict[str, float]:
    return {table["name"]: table["n_dead_tup"] for table in window.tables() if table["n_dead_tup"]}


def check_stats(window: Window, limits: dict[str, float]) -> list[Finding]:
    findings = []
    for statement in window.statements("delete"):
        per_call = statement["rows"] / statement["calls"]
        if per_call < limits["min_rows_per_call"]:
            continue
        findings.append(finding(
            "bulk_delete",
            f"`{short(statement['query'], 80)}` deleted {per_call:,.0f} rows per call "
            f"(mean {statement['mean_ms']:,.0f} ms): one huge transaction of locks, dead tuples and WAL",
            "error" if statement["mean_ms"] >= 1000 else "warning", subject=f"statement {statement['queryid']}",
            source=statement["query"], queryid=statement["queryid"], calls=statement["calls"],
            rows_per_call=round(per_call), mean_ms=round(statement["mean_ms"], 1), dead_tuples=_dead_tuples(window),
        ))
    for session in window.sessions():
        running = session["query_seconds"] or 0.0
        if session["state"] != "active" or running < limits["min_running_seconds"]:
            continue
        if statement_kind(session["query"] or "") != "delete":
            continue
        findings.append(finding(
            "bulk_delete",
            f"a DELETE has been running for {running:,.1f} s (pid {session['pid']}): `{short(session['query'], 80)}`",
            "error", subject=f"session {session['pid']}", source=session["query"], pid=session["pid"],
            running_seconds=round(running, 1),
        ))
    return findings
