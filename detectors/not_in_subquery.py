"""not_in_subquery at run time, two ways.

- The plan: `NOT IN (SELECT ...)` planned as a SubPlan that is not hashed. When the subquery's
  result does not fit in work_mem, Postgres cannot hash it and re-scans it for every outer row.
- The statistics: a `NOT IN (SELECT ...)` statement that returned no row at all, call after call.
  Hashed or not, NOT IN is never true once the subquery yields a NULL (a nullable column with
  NULLs in it), so the answer is always empty, and a LIMIT never fills: every call reads every
  outer row. A plain EXPLAIN cannot see that; pg_stat_statements' row count can.

NOT EXISTS has neither problem, and becomes an anti-join.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pglast.parser import ParseError, parse_sql_json

from pglab.lab.core.findings import Finding
from pglab.lab.core.sql import short
from pglab.lab.runtime.plans import PlanView
from pglab.lab.runtime.registry import finding
from pglab.lab.runtime.stats import Window

SUPERSEDES = ("correlated_subquery",)
# Parameters for the statements of fixes/not_in_subquery.sql, with which the tests prove this plan rule.
EXAMPLE_PARAMS: dict[str, object] = {}
# At test scale the subquery fits work_mem and is hashed (then NOT IN is cheap): shrink it.
EXAMPLE_SETTINGS = {"work_mem": "64kB"}
# Executed on the tests' data (no NULLs), its page fills after 50 outer rows, under the rule's gate;
# the plain plan shows the per-row SubPlan the executor would run for every outer row.
EXAMPLE_ANALYZE = False
THRESHOLDS = {
    "min_outer_rows": 1_000,
    # calls of a NOT IN statement that all returned nothing: a few empty answers can be the data's,
    # a page that stays empty call after call is the NULL trap (or a query that never had a use)
    "min_empty_calls": 20,
}
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


def check_stats(window: Window, limits: dict[str, float]) -> list[Finding]:
    findings = []
    for statement in window.statements("select"):
        if statement["rows"] or statement["calls"] < limits["min_empty_calls"] or not _has_not_in(statement["query"]):
            continue
        findings.append(finding(
            "not_in_subquery",
            f"`{short(statement['query'], 80)}` returned no row in any of its {statement['calls']:,.0f} calls "
            f"({statement['mean_ms']:,.1f} ms each): NOT IN is never true once its subquery yields a NULL, "
            "so the answer is always empty and every outer row is read",
            "warning", subject=f"statement {statement['queryid']}", source=statement["query"],
            queryid=statement["queryid"], calls=statement["calls"], mean_ms=round(statement["mean_ms"], 3),
        ))
    return findings


def _has_not_in(query: str) -> bool:
    """Whether the statement holds `x NOT IN (SELECT ...)`: NOT over an ANY sublink with a test."""
    try:
        tree = json.loads(parse_sql_json(query))
    except ParseError:
        return False
    return any(_not_in(node) for node in _dicts(tree))


def _not_in(node: dict[str, Any]) -> bool:
    boolean = node.get("BoolExpr")
    if not isinstance(boolean, dict) or boolean.get("boolop") != "NOT_EXPR":
        return False
    return any(isinstance(argument, dict) and (argument.get("SubLink") or {}).get("subLinkType") == "ANY_SUBLINK"
               and (argument.get("SubLink") or {}).get("testexpr") for argument in boolean.get("args", []))


def _dicts(value: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            found.append(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found
