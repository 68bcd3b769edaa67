"""unbounded_results at run time: a SELECT returning many rows per call, call after call.

pg_stat_statements counts the rows each statement returned; a list query without LIMIT returns
more as the data grows. Aggregates and bounded pages stay under `min_rows_per_call`.
"""

from __future__ import annotations

from pglab.lab.core.findings import Finding
from pglab.lab.core.sql import short
from pglab.lab.runtime.registry import finding
from pglab.lab.runtime.stats import Window

THRESHOLDS = {
    "min_rows_per_call": 1_000,
    "min_calls": 5,
}


def check_stats(window: Window, limits: dict[str, float]) -> list[Finding]:
    findings = []
    for statement in window.statements("select"):
        per_call = statement["rows"] / statement["calls"]
        if statement["calls"] < limits["min_calls"] or per_call < limits["min_rows_per_call"]:
            continue
        findings.append(finding(
            "unbounded_results",
            f"`{short(statement['query'], 80)}` returned {per_call:,.0f} rows per call over {statement['calls']:,.0f} "
            "calls: a list without a bound grows with the table",
            "warning", subject=f"statement {statement['queryid']}", source=statement["query"],
            queryid=statement["queryid"], calls=statement["calls"], rows_per_call=round(per_call, 1),
        ))
    return findings
