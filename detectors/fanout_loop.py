"""fanout_loop at run time: single-row INSERTs called many times per unit of work.

One INSERT per recipient shows in pg_stat_statements as an INSERT of about one row per call whose
calls are a multiple of the transactions in the window.
INSERT ... SELECT, unnest or COPY write the same rows in one call.
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
    "min_ratio": 5,  # calls per transaction in the window
    "max_rows_per_call": 1.5,
}


def check_stats(window: Window, limits: dict[str, float]) -> list[Finding]:
    findings = []
    for statement, evidence in single_row_loops(window, "insert", limits):
        calls = statement["calls"]
        findings.append(finding(
            "fanout_loop",
            f"`{short(statement['query'], 80)}` inserted {statement['rows']:,.0f} rows in {calls:,.0f} calls, "
            "one row at a time inside a loop: each call is a round trip and a WAL record",
            "warning", subject=f"statement {statement['queryid']}", source=statement["query"],
            queryid=statement["queryid"], calls=calls, rows=statement["rows"], **evidence,
        ))
    return findings


def check_captured(groups: Sequence[Group], settings: Settings) -> list[Finding]:
    """In a test (the pytest plugin): INSERTs of one shape sent from one call chain at least
    `settings.n_plus_one` times."""
    from pglab.lab.plugin.captured import repeat_findings

    return repeat_findings('fanout_loop', groups, ("insert",), settings)
