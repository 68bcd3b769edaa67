"""n_plus_one at run time: one top-level SELECT run again and again right after another one.

What ties a loop's calls to the query whose rows drive it is the session that sends both. Where
diagnose sampled pg_stat_activity through the window (`--watch`), the rule links them that way
(`pglab.lab.runtime.activity`): the samples saw sessions start the statement moments after the
parent, and it ran at least `min_ratio` times per call of that parent. It then names the parent,
and finds loops in autocommit mode too, where comparing calls with transactions finds none. A
statement repeated with no parent in its session (a worker looking up ids it holds) is no N+1.

Where nobody sampled (diagnose without --watch judges counters since its previous run, often hours
of mixed traffic) the rule does not run, and diagnose says it needs a watch window. Callers that
measure a window of their own and pass no samples (the lab, the campaign) get the older estimate:
calls that are a multiple of all the transactions in the window, with no parent named, which a
loop in autocommit mode escapes. The pytest plugin, which sees call sites, names the loop's line.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pglab.lab.core.findings import Finding
from pglab.lab.core.sql import short
from pglab.lab.runtime.activity import links
from pglab.lab.runtime.registry import finding
from pglab.lab.runtime.stats import Window, loop_evidence, normalised

if TYPE_CHECKING:
    from pglab.lab.plugin.captured import Group
    from pglab.lab.plugin.settings import Settings

THRESHOLDS = {
    "min_calls": 100,  # in the window
    "min_ratio": 5,  # calls per call of the parent (per transaction in the window, without samples)
    "min_steps": 2,  # times the samples saw a session start the statement right after its parent
}


def check_stats(window: Window, limits: dict[str, float]) -> list[Finding]:
    if window.activity is not None:
        return _linked(window, limits)
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


def _linked(window: Window, limits: dict[str, float]) -> list[Finding]:
    """Loops tied to their parent through the sessions sampled in the window."""
    assert window.activity is not None
    selects = {normalised(s["query"]): s for s in window.statements("select")}
    findings = []
    for key, parents in links(window.activity, list(selects.values())).items():
        statement = selects[key]
        if statement["calls"] < limits["min_calls"]:
            continue
        candidates = [(link, selects[link.parent]) for link in parents.values() if link.steps >= limits["min_steps"]
                      and statement["calls"] >= limits["min_ratio"] * selects[link.parent]["calls"]]
        if not candidates:
            continue
        link, parent = max(candidates, key=lambda pair: (pair[0].steps, pair[1]["calls"]))
        per_call = round(statement["calls"] / parent["calls"], 1)
        where = "in one transaction" if link.same_transaction else "in the same session"
        sessions = f"{len(link.sessions)} session{'s' if len(link.sessions) > 1 else ''}"
        evidence: dict[str, Any] = {
            "parent": short(parent["query"], 200), "parent_queryid": parent["queryid"], "parent_calls": parent["calls"],
            "calls_per_parent_call": per_call, "sampled_steps": link.steps, "sessions": len(link.sessions),
            "same_transaction": link.same_transaction, "samples": window.activity.samples}
        findings.append(finding(
            "n_plus_one",
            f"`{short(statement['query'], 80)}` ran {statement['calls']:,.0f} times, {per_call} times per call of "
            f"`{short(parent['query'], 80)}`, which it follows {where} ({link.steps} times in sampled activity, "
            f"{sessions}): a query run in a loop over the rows of another",
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
