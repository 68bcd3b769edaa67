"""n_plus_one at run time: one SELECT fingerprint called far more often than the units of work.

pg_stat_statements cannot see call sites, but a loop over a result set leaves two marks: the
statement's calls are a multiple of the transactions in the window, or they match the rows a
cheaper-called SELECT returned (the parent whose rows drive the loop).
"""

from __future__ import annotations

from pglab.lab.core.findings import Finding
from pglab.lab.core.sql import short
from pglab.lab.runtime.registry import finding
from pglab.lab.runtime.stats import Window, loop_evidence

THRESHOLDS = {
    "min_calls": 100,  # in the window
    "min_ratio": 5,  # calls per transaction, or per call of the parent SELECT
}


def check_stats(window: Window, limits: dict[str, float]) -> list[Finding]:
    findings = []
    for statement in window.statements("select"):
        if statement["calls"] < limits["min_calls"]:
            continue
        evidence = loop_evidence(window, statement, limits["min_ratio"])
        if evidence is None:
            continue
        per = (f"{evidence['calls_per_transaction']} times per transaction" if "transactions" in evidence
               else f"{evidence['calls_per_parent_call']} times per call of `{short(evidence['parent_query'], 80)}`")
        findings.append(finding(
            "n_plus_one",
            f"`{short(statement['query'], 80)}` ran {statement['calls']:,.0f} times, {per}: one query per row "
            "of another query",
            "warning", subject=f"statement {statement['queryid']}", source=statement["query"],
            queryid=statement["queryid"], calls=statement["calls"], mean_ms=round(statement["mean_ms"], 3),
            **evidence,
        ))
    return findings
