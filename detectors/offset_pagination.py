"""offset_pagination at run time: a Limit that reads far more rows than it returns.

`OFFSET n` makes Postgres produce and throw away n rows before the page. Analysed plans show it
directly (the Limit's input rows against its own); plain plans show it in the costs, since the
planner charges a Limit the share of its input's run cost that the offset skips.
"""

from __future__ import annotations

from pglab.lab.core.findings import Finding
from pglab.lab.runtime.plans import Node, PlanView
from pglab.lab.runtime.registry import finding

# Parameters for the statements of fixes/offset_pagination.sql, with which the tests prove this plan rule:
# page 41 of a conversation's history, by OFFSET (naive) and after a message's key (fixed). It needs
# conversations longer than 2,050 messages: EXAMPLE_SEED is the tests' seed_chat() sizes for that.
EXAMPLE_PARAMS: dict[str, object] = {"conversation_id": 1, "rows": 51, "offset": 2_000, "after_id": 20_000}
EXAMPLE_SEED = {"conversations": 10}  # 30,000 messages over 10 conversations: 3,000 each
THRESHOLDS = {
    "min_rows_skipped": 1_000,
    "min_skip_ratio": 10,  # rows skipped per row returned
}


def skipped_rows(node: Node) -> float:
    child = node.children[0]
    if node.analyzed:
        return max(child.rows_total - node.rows_total, 0.0)
    startup, child_startup = float(node.raw["Startup Cost"]), float(child.raw["Startup Cost"])
    run_cost = float(child.raw["Total Cost"]) - child_startup
    if run_cost <= 0:
        return 0.0
    return max(startup - child_startup, 0.0) / run_cost * child.rows * node.loops


def check_plan(view: PlanView, limits: dict[str, float]) -> list[Finding]:
    findings = []
    for node in view.nodes:
        if node.type != "Limit" or not node.children:
            continue
        skipped = skipped_rows(node)
        returned = node.rows_total
        if skipped < limits["min_rows_skipped"] or skipped < limits["min_skip_ratio"] * max(returned, 1.0):
            continue
        estimated = "" if view.analyzed else " (estimated from costs)"
        findings.append(finding(
            "offset_pagination",
            f"the Limit produces and discards {skipped:,.0f} rows to return {returned:,.0f}{estimated}: "
            "each deeper page costs more than the last",
            "warning", subject=f"plan node {node.path}", plan_excerpt=node.excerpt(),
            input_excerpt=node.children[0].excerpt(), rows_skipped=skipped, rows_returned=returned,
        ))
    return findings
