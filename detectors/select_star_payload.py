"""select_star_payload at run time: a statement that returns wide rows, many of them.

Wide rows are what `SELECT *` over jsonb/text payload columns produces: every byte is detoasted,
sent and parsed by the client although the page shows a title and a date.
"""

from __future__ import annotations

from pglab.lab.core.findings import Finding
from pglab.lab.runtime.plans import PlanView
from pglab.lab.runtime.registry import finding

# Parameters for the statements of fixes/select_star_payload.sql, with which the tests prove this plan rule.
EXAMPLE_PARAMS: dict[str, object] = {}
THRESHOLDS = {
    "min_row_width": 1_000,  # bytes per row, the planner's estimate (Plan Width)
    "min_bytes": 100_000,  # bytes per execution
}


def check_plan(view: PlanView, limits: dict[str, float]) -> list[Finding]:
    root = view.nodes[0]
    width = float(root.raw.get("Plan Width", 0) or 0)
    payload = width * root.rows_total
    if width < limits["min_row_width"] or payload < limits["min_bytes"]:
        return []
    return [finding(
        "select_star_payload",
        f"each execution returns {root.rows_total:,.0f} rows of about {width:,.0f} bytes "
        f"({payload / 1e6:,.1f} MB): name only the columns the caller needs",
        "warning", subject=f"plan node {root.path}", plan_excerpt=root.excerpt(), row_width=width,
        rows=root.rows_total, bytes=payload,
    )]
