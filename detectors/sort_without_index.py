"""sort_without_index at run time: a Sort under a Limit fed straight from a table scan.

`ORDER BY ... LIMIT n` should read n rows from an index in order; a Sort (usually a top-N
heapsort) over every matching row means no index covers the filter and the sort key. Sorts of
computed results (aggregates, joins) are left alone: no index could have delivered their order.
"""

from __future__ import annotations

from pglab.lab.core.findings import Finding
from pglab.lab.runtime.plans import Node, PlanView
from pglab.lab.runtime.registry import finding

# Parameters for the statements of fixes/sort_without_index.sql, with which the tests prove this plan rule.
EXAMPLE_PARAMS: dict[str, object] = {"user_id": 1}  # an integration account of its setup block
THRESHOLDS = {"min_rows_sorted": 10_000}
_PASS_THROUGH = ("Gather", "Gather Merge")


def _limit_above(node: Node) -> Node | None:
    """The Limit this Sort feeds, through any Gather: the rows the query returns come from it,
    not from the Gather Merge below it (which counts every row the workers sorted)."""
    parent = node.parent
    while parent is not None and parent.type in _PASS_THROUGH:
        parent = parent.parent
    return parent if parent is not None and parent.type == "Limit" else None


def _scan_input(node: Node) -> Node | None:
    child = node.children[0] if node.children else None
    while child is not None and child.type in _PASS_THROUGH:
        child = child.children[0] if child.children else None
    return child if child is not None and child.is_scan else None


def check_plan(view: PlanView, limits: dict[str, float]) -> list[Finding]:
    findings = []
    for node in view.nodes:
        limit = _limit_above(node)
        if not node.type.endswith("Sort") or node.type == "Incremental Sort" or limit is None:
            continue
        scan = _scan_input(node)
        if scan is None or scan.rows_total < limits["min_rows_sorted"]:
            continue
        keys = ", ".join(node.raw.get("Sort Key", []))
        method = node.raw.get("Sort Method", "sort")
        findings.append(finding(
            "sort_without_index",
            f"{method} of {scan.rows_total:,.0f} rows from {scan.relation} by ({keys}) to return "
            f"{limit.rows_total:,.0f} of them: no index delivers this order",
            "warning", subject=f"plan node {node.path}", plan_excerpt=node.excerpt(),
            scan_excerpt=scan.excerpt(), relation=scan.relation, rows_sorted=scan.rows_total, sort_key=keys,
        ))
    return findings
