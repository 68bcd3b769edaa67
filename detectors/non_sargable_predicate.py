"""non_sargable_predicate at run time: a scan filtering on a function of, or a cast of, a column
that an index leads with, so the index is there and cannot be used.

Needs to know which columns lead an index (`PlanView.indexed_columns`); without that the rule
stays quiet rather than guess, and the plain missing_index rule speaks instead.
"""

from __future__ import annotations

import re
from datetime import date

from pglab.lab.core.findings import Finding
from pglab.lab.runtime.plans import PlanView, iter_scans
from pglab.lab.runtime.registry import finding

SUPERSEDES = ("missing_index",)
# Parameters for the statements of fixes/non_sargable_predicate.sql, with which the tests prove this plan rule.
EXAMPLE_PARAMS: dict[str, object] = {"day": date(2025, 12, 17), "next_day": date(2025, 12, 18)}
THRESHOLDS = {
    "min_table_rows": 10_000,
    "min_removed_fraction": 0.5,
    "min_rows_removed": 1_000,
}
_IDENT = r"[a-z_][a-z0-9_$]*(?:\.[a-z_][a-z0-9_$]*)?"
_CALL = re.compile(rf"\b([a-z_][a-z0-9_]*)\((?:'(?:[^']|'')*'(?:::[\w ]+)?,\s*)?\(?({_IDENT})\)?\s*[,)]")
_CAST = re.compile(rf"\(({_IDENT})\)::([\w ]+)")


def wrapped_columns(condition: str) -> list[tuple[str, str]]:
    """(column, wrapping) for every column a condition passes through a function or a cast."""
    found = [(column, f"{function}({column})") for function, column in _CALL.findall(condition)]
    found += [(column, f"{column}::{target.strip()}") for column, target in _CAST.findall(condition)]
    return [(column.rsplit(".", 1)[-1], wrapping) for column, wrapping in found]


def check_plan(view: PlanView, limits: dict[str, float]) -> list[Finding]:
    findings = []
    for node in iter_scans(view):
        indexed = view.indexed_columns.get(node.relation or "", frozenset())
        hits = [(column, wrapping) for column, wrapping in wrapped_columns(node.filter) if column in indexed]
        if not hits or view.table_size(node) < limits["min_table_rows"]:
            continue
        fraction, removed = view.removed_fraction(node)
        if fraction < limits["min_removed_fraction"] or removed < limits["min_rows_removed"]:
            continue
        column, wrapping = hits[0]
        findings.append(finding(
            "non_sargable_predicate",
            f"{node.type} on {node.relation} although {column} is indexed: the filter compares {wrapping}, "
            f"which the index on {column} cannot serve, and discards {removed:,.0f} rows",
            "error" if node.type.endswith("Seq Scan") else "warning",
            subject=f"plan node {node.path}", plan_excerpt=node.excerpt(), relation=node.relation,
            column=column, expression=wrapping, rows_removed=removed,
        ))
    return findings
