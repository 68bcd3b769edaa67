"""sort_without_index at run time: a Sort under a Limit fed straight from a table scan.

`ORDER BY ... LIMIT n` should read n rows from an index in order; a Sort (usually a top-N
heapsort) over every matching row means no index covers the filter and the sort key. Sorts of
computed results (aggregates, joins) are left alone: no index could have delivered their order.
"""

from __future__ import annotations

from pglab.lab.core.findings import Finding
from pglab.lab.runtime.plans import Node, PlanView
from pglab.lab.runtime.registry import finding

THRESHOLDS = {"min_rows_sorted": 10_000}
_PASS_THROUGH = ("Gather", "Gather Merge")


def _under_limit(node: Node) -> bool:
    parent = node.parent
    while parent is not None and parent.type in _PASS_THROUGH:
        parent = parent.parent
    return parent is not None and parent.type == "Limit"


def _scan_input(node: Node) -> Node | None:
    child = node.children[0] if node.children else None
    while child is not None and child.type in _PASS_THROUGH:
        child = child.children[0] if child.children else None
    return child if child is not None and child.is_scan else None


def check_plan(view: PlanView, limits: dict[str, float]) -> list[Finding]:
    findings = []
    for node in view.nodes:
        if not node.type.endswith("Sort") or node.type == "Incremental Sort" or not _under_limit(node):
            continue
        scan = _scan_input(node)
        if scan is None or scan.rows_total < limits["min_rows_sorted"]:
            continue
        keys = ", ".join(node.raw.get("Sort Key", []))
        method = node.raw.get("Sort Method", "sort")
        findings.append(finding(
            "sort_without_index",
            f"{method} of {scan.rows_total:,.0f} rows from {scan.relation} by ({keys}) to return "
            f"{node.parent.rows if node.parent else 0:,.0f} of them: no index delivers this order",
            "warning", subject=f"plan node {node.path}", plan_excerpt=node.excerpt(),
            scan_excerpt=scan.excerpt(), relation=scan.relation, rows_sorted=scan.rows_total, sort_key=keys,
        ))
    return findings
