"""n_plus_one at run time: one top-level SELECT called many times per unit of work.

pg_stat_statements cannot see call sites, but a loop over a result set leaves one mark it can
count: the statement's calls are a multiple of the transactions in the window. It cannot say which
query's rows drive the loop (matching call counts against row counts pairs unrelated statements),
so the finding names no parent; the pytest plugin, which sees call sites, does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pglab.lab.core.findings import Finding
from pglab.lab.core.sql import short
from pglab.lab.runtime.registry import finding
from pglab.lab.runtime.stats import Window, loop_evidence

if TYPE_CHECKING:
    from pglab.lab.plugin.captured import Group
    from pglab.lab.plugin.settings import Settings

THRESHOLDS = {
    "min_calls": 100,  # in the window
    "min_ratio": 5,  # calls per transaction in the window
}


def check_stats(window: Window, limits: dict[str, float]) -> list[Finding]:
    findings = []
    for statement in window.statements("select"):
        if statement["calls"] < limits["min_calls"]:
            continue
        evidence = loop_evidence(window, statement, limits["min_ratio"])
        if evidence is None:
            continue
        findings.append(finding(
            "n_plus_one",
            f"`{short(statement['query'], 80)}` ran {statement['calls']:,.0f} times, "
            f"{evidence['calls_per_transaction']} times per transaction: a query run in a loop, likely once per row "
            "of another query",
            "warning", subject=f"statement {statement['queryid']}", source=statement["query"],
            queryid=statement["queryid"], calls=statement["calls"], mean_ms=round(statement["mean_ms"], 3),
            **evidence,
        ))
    return findings


def check_captured(groups: Sequence[Group], settings: Settings) -> list[Finding]:
    """In a test (the pytest plugin): SELECTs of one shape sent from one call chain at least
    `settings.n_plus_one` times."""
    from pglab.lab.plugin.captured import repeat_findings

    return repeat_findings('n_plus_one', groups, ("select",), settings)
