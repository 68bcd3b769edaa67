"""ilike_scan at run time: a scan testing a `LIKE`/`ILIKE` pattern (`~~`, `~~*`) row by row.

A B-tree cannot serve `'%term%'`, so the Filter is evaluated on every row of the table. A trigram
or full-text index turns it into an `Index Cond`/`Recheck Cond`, which this rule leaves alone.
"""

from __future__ import annotations

import re

from pglab.lab.core.findings import Finding
from pglab.lab.runtime.plans import PlanView, iter_scans
from pglab.lab.runtime.registry import finding

SUPERSEDES = ("missing_index",)
# Parameters for the statements of fixes/ilike_scan.sql, with which the tests prove this plan rule.
EXAMPLE_PARAMS: dict[str, object] = {"pattern": "%needle%"}
THRESHOLDS = {
    "min_table_rows": 10_000,
    "min_rows_read": 10_000,  # over all loops
}
_LIKE = re.compile(r"!?~~\*?\s+('(?:[^']|'')*'|\$\d+|\S+)")


def check_plan(view: PlanView, limits: dict[str, float]) -> list[Finding]:
    findings = []
    for node in iter_scans(view):
        match = _LIKE.search(node.filter)
        if not match or view.table_size(node) < limits["min_table_rows"]:
            continue
        if node.removed is not None:
            read = (node.rows + node.removed) * node.loops
        else:
            read = view.table_size(node) * node.loops if node.type.endswith("Seq Scan") else node.rows_total
        if read < limits["min_rows_read"]:
            continue
        pattern = match.group(1)
        leading = " with a leading wildcard" if pattern.startswith("'%") else ""
        findings.append(finding(
            "ilike_scan",
            f"{node.type} on {node.relation} tests the pattern {pattern}{leading} against {read:,.0f} rows; "
            "no index can serve it, so every search reads the whole table",
            "error" if node.type.endswith("Seq Scan") else "warning",
            subject=f"plan node {node.path}", plan_excerpt=node.excerpt(), relation=node.relation,
            pattern=pattern, rows_read=read,
        ))
    return findings
