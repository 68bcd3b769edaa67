"""per_row_update at run time: single-row UPDATEs called many times per unit of work.

The same mark as fanout_loop, for UPDATE: about one row per call, calls a multiple of the
transactions in the window.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pglab.lab.core.findings import Finding
from pglab.lab.core.sql import short
from pglab.lab.runtime.registry import finding
from pglab.lab.runtime.stats import Window, single_row_loops

if TYPE_CHECKING:
    from pglab.lab.plugin.captured import Group
    from pglab.lab.plugin.settings import Settings

THRESHOLDS = {
    "min_calls": 100,
    "min_ratio": 5,
    "max_rows_per_call": 1.5,
}


def check_stats(window: Window, limits: dict[str, float]) -> list[Finding]:
    findings = []
    for statement, evidence in single_row_loops(window, "update", limits):
        calls = statement["calls"]
        findings.append(finding(
            "per_row_update",
            f"`{short(statement['query'], 80)}` updated {statement['rows']:,.0f} rows in {calls:,.0f} calls, "
            "one row per call inside a loop; one UPDATE ... WHERE id = ANY($1) does the same work",
            "warning", subject=f"statement {statement['queryid']}", source=statement["query"],
            queryid=statement["queryid"], calls=calls, rows=statement["rows"], **evidence,
        ))
    return findings


def check_captured(groups: Sequence[Group], settings: Settings) -> list[Finding]:
    """In a test (the pytest plugin): UPDATEs, DELETEs, MERGEs or writing WITH queries of one
    shape sent from one call chain at least `settings.n_plus_one` times."""
    from pglab.lab.plugin.captured import repeat_findings

    return repeat_findings('per_row_update', groups, ("update", "delete", "merge", "cte_write"), settings)
