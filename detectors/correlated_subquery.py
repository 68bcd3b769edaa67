"""correlated_subquery at run time: a SubPlan executed once per outer row, each run reading rows.

A hashed SubPlan runs once and is fine; a correlated one shows `loops` equal to the outer rows.
Looping alone is not the disease: a SubPlan that probes an index reads only its own rows, so all
loops together read the table about once. The quadratic case is a SubPlan that scans: each loop
reads the table (a Seq Scan, or a Filter discarding most of what it reads). A plain (not analysed)
plan has no row counts for an index scan's Filter, so there the planner's cost of one run of the
SubPlan stands in for the rows it reads.
"""

from __future__ import annotations

import re

from pglab.lab.core.findings import Finding
from pglab.lab.runtime.plans import Node, PlanView, is_hashed_subplan
from pglab.lab.runtime.registry import finding

CPU_TUPLE_COST = 0.01  # the planner's default cost of processing one row

# Parameters for the statements of fixes/correlated_subquery.sql, with which the tests prove this plan rule.
EXAMPLE_PARAMS: dict[str, object] = {"conversation_id": 7, "page": 200}
THRESHOLDS = {
    "min_loops": 100,  # fewer runs are flagged only when they read error_rows_read in total
    "min_rows_read": 10_000,  # rows read by the SubPlan's scans over all loops
    "error_rows_read": 1_000_000,
    "min_cost_per_loop": 100,  # plain plans: planner cost of one SubPlan run (an index probe costs ~10)
}


def scans_under(view: PlanView, top: Node) -> list[Node]:
    return [node for node in view.nodes if node.is_within(top) and node.is_scan]


def rows_read(view: PlanView, node: Node) -> float:
    """Rows a scan read over all its loops, the Filter's discards included."""
    if node.removed is not None:
        return (node.rows + node.removed) * node.loops
    if node.type.endswith("Seq Scan"):
        return view.table_size(node) * node.loops
    return node.rows_total


def rescans(view: PlanView, node: Node) -> bool:
    return node.type.endswith("Seq Scan") or view.removed_fraction(node)[0] >= 0.5


def costly_runs(view: PlanView, subplan: Node, scans: list[Node], limits: dict[str, float]) -> bool:
    """Plain plans: one run of the SubPlan costs a scan's worth, and a scan in it filters or is sequential."""
    per_loop = float(subplan.raw.get("Total Cost", 0) or 0)
    return per_loop >= limits["min_cost_per_loop"] and any(s.filter or s.type.endswith("Seq Scan") for s in scans)


def quadratic(view: PlanView, subplan: Node, scans: list[Node], read: float, limits: dict[str, float]) -> bool:
    """Quadratic work is many runs, or few runs that each read a large table: 25 runs of a 500k-row
    scan hurt as much as 10,000 runs of a 1,000-row one. Analysed plans count the rows read; plain
    (generic) plans, whose loop estimates are poor (LIMIT $1 is guessed at 10 % of the rows), weigh
    the planned cost of all runs, at cpu_tuple_cost per row: `error_rows_read` rows' worth."""
    many_runs = subplan.loops >= limits["min_loops"]
    if view.analyzed:
        heavy = read >= limits["error_rows_read"]
        return (many_runs or heavy) and read >= limits["min_rows_read"] and any(rescans(view, s) for s in scans)
    planned = subplan.loops * float(subplan.raw.get("Total Cost", 0) or 0)
    heavy = planned >= limits["error_rows_read"] * CPU_TUPLE_COST
    return (many_runs or heavy) and costly_runs(view, subplan, scans, limits)


_CORRELATED_ON = re.compile(r"\((\w+) = (\w+)\.(\w+)\)")


def pinned_rows(view: PlanView, scans: list[Node]) -> float | None:
    """Rows each run reads when it is correlated on a column the outer scan pins to one value.

    A custom plan of `WHERE o.customer_id = '1'` with a SubPlan probing `e.customer_id =
    o.customer_id` reads, on every run, every row of that customer: as many as the outer scan
    returns. The planner costs each probe at the column's average rows per value (a few), which is
    right for an average customer and wrong for the busiest, the one a custom plan is made for."""
    for scan in scans:
        condition = f"{scan.raw.get('Index Cond', '')} {scan.raw.get('Recheck Cond', '')}"
        for inner, alias, outer_column in _CORRELATED_ON.findall(condition):
            if inner != outer_column:
                continue
            for outer in view.nodes:
                pins = f"{outer.raw.get('Filter', '')} {outer.raw.get('Index Cond', '')}"
                if outer.is_scan and outer.raw.get("Alias") == alias and re.search(rf"\b{inner} = '", pins):
                    return outer.rows * outer.workers
    return None


def check_plan(view: PlanView, limits: dict[str, float]) -> list[Finding]:
    findings = []
    for node in view.nodes:
        if node.raw.get("Parent Relationship") != "SubPlan" or (
                node.parent is not None and is_hashed_subplan(node.raw, node.parent.raw)):
            continue
        scans = scans_under(view, node)
        read = sum(rows_read(view, scan) for scan in scans)
        pinned = None if view.analyzed else pinned_rows(view, scans)
        if pinned is not None and node.loops * pinned >= limits["error_rows_read"] and node.loops >= 2:
            read = node.loops * pinned
            work = f"each run reads the {pinned:,.0f} rows of the value the outer scan pins ({read:,.0f} in total)"
        elif node.loops < 2 or not quadratic(view, node, scans, read, limits):
            continue
        else:
            work = (f"reads {read:,.0f} rows in total" if view.analyzed else
                    f"each run is planned at cost {float(node.raw.get('Total Cost', 0)):,.0f}")
        severity = "error" if read >= limits["error_rows_read"] else "warning"
        findings.append(finding(
            "correlated_subquery",
            f"{node.raw.get('Subplan Name')} runs once per outer row ({node.loops:,.0f} times) and {work}: "
            "the query's cost grows with the square of the data",
            severity, subject=f"plan node {node.path}", plan_excerpt=node.excerpt(), loops=node.loops,
            rows_read=read,
        ))
    return findings
