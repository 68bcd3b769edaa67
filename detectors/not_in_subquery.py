"""not_in_subquery at run time: `NOT IN (SELECT ...)` planned as a SubPlan that is not hashed.

When the subquery's result does not fit in work_mem, Postgres cannot hash it and re-scans it for
every outer row. (Hashed or not, NOT IN also returns nothing once the subquery yields a NULL;
NOT EXISTS has neither problem, and becomes an anti-join.)
"""

from __future__ import annotations

import re

from pglab.lab.core.findings import Finding
from pglab.lab.runtime.plans import PlanView
from pglab.lab.runtime.registry import finding

SUPERSEDES = ("correlated_subquery",)
# Parameters for the statements of fixes/not_in_subquery.sql, with which the tests prove this plan rule.
EXAMPLE_PARAMS: dict[str, object] = {}
# At test scale the subquery fits work_mem and is hashed (then NOT IN is cheap): shrink it.
EXAMPLE_SETTINGS = {"work_mem": "64kB"}
# Executed, that non-hashed NOT IN re-reads the subquery per row for minutes: prove it on plain EXPLAIN.
EXAMPLE_ANALYZE = False
THRESHOLDS = {"min_outer_rows": 1_000}
_NOT_IN = re.compile(r"NOT \((?:ANY \([^()]*\()?(hashed )?(SubPlan \d+)")


def check_plan(view: PlanView, limits: dict[str, float]) -> list[Finding]:
    findings = []
    for node in view.nodes:
        for hashed, name in _NOT_IN.findall(node.filter):
            subplan = view.subplan(name, node)
            if hashed or subplan is None:
                continue
            if node.removed is not None:
                outer = (node.rows + node.removed) * node.loops
            else:
                outer = view.table_size(node) if node.type.endswith("Seq Scan") else node.rows_total
            if outer < limits["min_outer_rows"]:
                continue
            findings.append(finding(
                "not_in_subquery",
                f"NOT IN re-runs {name} for each of {outer:,.0f} outer rows because its result cannot be "
                "hashed; it also returns no row at all if the subquery yields a NULL",
                "warning", subject=f"plan node {subplan.path}", plan_excerpt=node.excerpt(),
                subplan_excerpt=subplan.excerpt(), outer_rows=outer,
            ))
    return findings
