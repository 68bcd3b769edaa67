"""count_per_request at run time: a COUNT query among the most expensive statements by calls x time.

A count on every request (a badge, a pager, middleware) is called as often as the endpoints
themselves and, unlike them, reads every matching row each time. A count run now and then (a
report) stays under `min_calls` or under `min_time_share`.
"""

from __future__ import annotations

import re

from pglab.lab.core.findings import Finding
from pglab.lab.core.sql import short
from pglab.lab.runtime.registry import finding
from pglab.lab.runtime.stats import Window

THRESHOLDS = {
    "min_calls": 100,
    "min_time_share": 0.2,  # of the execution time of all statements in the window
}
_COUNT = re.compile(r"\bcount\s*\(", re.IGNORECASE)


def check_stats(window: Window, limits: dict[str, float]) -> list[Finding]:
    statements = window.statements()
    total = sum(statement["total_exec_time"] for statement in statements)
    findings = []
    for statement in statements:
        if statement["kind"] != "select" or not _COUNT.search(statement["query"]):
            continue
        share = statement["total_exec_time"] / total if total else 0.0
        if statement["calls"] < limits["min_calls"] or share < limits["min_time_share"]:
            continue
        findings.append(finding(
            "count_per_request",
            f"`{short(statement['query'], 80)}` ran {statement['calls']:,.0f} times and took {share:.0%} of all "
            "statement time: a count recomputed on every request",
            "warning", subject=f"statement {statement['queryid']}", source=statement["query"],
            queryid=statement["queryid"], calls=statement["calls"], mean_ms=round(statement["mean_ms"], 3),
            time_share=round(share, 3),
        ))
    return findings
