"""The per-test checks of the pytest plugin, over what `pglab.lab.plugin.capture` recorded.

The judgement of each catalogue entry lives in its detector (`check_captured` over statements
grouped by shape and call chain, `check_captured_transactions` over transactions), found through
the detector registry; this module groups, dispatches, and owns the one check that is no
catalogue entry: the test's statement budget (`query_budget`). A failing test says what ran, from
where, how often, and what to do about it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from pglab.lab.core.findings import Finding
from pglab.lab.core.sql import short
from pglab.lab.plugin.captured import Group, groups
from pglab.lab.plugin.records import Statement, Transaction
from pglab.lab.plugin.settings import Settings
from pglab.lab.runtime.registry import hooks_named

BUDGET = "query_budget"  # the budget finding's name: not a catalogue entry, accepted by `allow=`
BUDGET_HINT = ("send fewer statements: batch the repeated ones (a JOIN, WHERE id = ANY(%s), executemany), "
               "or raise the budget if the test really needs them")
_BUDGETS = (("max_queries", None, "statements"), ("max_selects", "select", "SELECTs"),
            ("max_writes", "write", "writes"))


def detector_checks(statements: Sequence[Statement], found: Sequence[Transaction], settings: Settings
                    ) -> list[Finding]:
    """Every detector's judgement of the captured statements and transactions."""
    grouped = groups(statements)
    findings: list[Finding] = []
    for hook in hooks_named("check_captured").values():
        findings += hook(grouped, settings)
    for hook in hooks_named("check_captured_transactions").values():
        findings += hook(found, settings)
    return findings


def budget(statements: Sequence[Statement], settings: Settings) -> list[Finding]:
    """Statement counts over the test's budget, by class: a finding of its own (`query_budget`,
    check named after the limit) whose breakdown lists every statement shape and call chain."""
    findings = []
    grouped = groups(statements)
    for name, wanted, label in _BUDGETS:
        limit = getattr(settings, name)
        if limit is None:
            continue
        chosen = [g for g in grouped if wanted is None or g.shape.statement_class == wanted]
        total = sum(g.calls for g in chosen)
        if total <= limit:
            continue
        top = chosen[0]
        findings.append(Finding(
            id=BUDGET, code="", severity="error", path=top.first.path, line=top.first.line, fix_hint=BUDGET_HINT,
            message=f"{total} {label} sent, budget {limit}; {len(chosen)} distinct statement"
                    f"{'s' if len(chosen) != 1 else ''}, most repeated {top.calls}x",
            evidence={"check": name, "count": total, "limit": limit, "call_site": top.first.call_site,
                      "breakdown": [_line_of(g) for g in chosen]},
        ))
    return findings


def _line_of(group: Group) -> dict[str, Any]:
    return {"count": group.calls, "call_site": group.where, "sql": short(group.first.sql, 120),
            "fingerprint": group.shape.fingerprint}


def describe(findings: Sequence[Finding]) -> str:
    """The failure text: per finding the consequence, the statement, the evidence, the fix."""
    lines = [f"pglab found {len(findings)} problem{'s' if len(findings) != 1 else ''} in this test:"]
    for finding in findings:
        check = finding.evidence.get("check", "")
        where = (f"{finding.path}:{finding.line}" if finding.path
                 else finding.evidence.get("call_site") or "an unknown place (no call site recorded)")
        title = f"{finding.code} {finding.id}" if finding.code else finding.id
        lines += ["", f"{title} [{check}] at {where}", f"  {finding.message}"]
        if finding.source:
            lines.append(f"  SQL: {short(finding.source)}")
        for item in finding.evidence.get("breakdown", []):
            lines.append(f"    {item['count']:>5}x  {item['call_site']}  {item['sql']}")
        plan = finding.evidence.get("plan_excerpt")
        if plan:
            lines.append(f"  plan: {plan}")
        if finding.fix_hint:
            lines.append(f"  fix: {finding.fix_hint}")
        fingerprint = finding.evidence.get("fingerprint")
        also = f" (this statement only: allow=[{fingerprint!r}])" if fingerprint else ""
        lines.append(f"  allow: @pytest.mark.pglab(allow=[{finding.id!r}]){also}")
    return "\n".join(lines)


def top_fingerprints(counts: Mapping[str, Counter[str]], texts: Mapping[str, str], limit: int = 10
                     ) -> list[dict[str, Any]]:
    """Fingerprints by calls over the session: counts maps fingerprint -> Counter(test -> calls),
    texts maps fingerprint -> its normalised shape."""
    ranked = sorted(counts.items(), key=lambda item: -sum(item[1].values()))[:limit]
    return [{"fingerprint": fp, "calls": sum(per_test.values()), "tests": len(per_test),
             "max_in_one_test": max(per_test.values()), "sql": short(texts.get(fp, ""), 200)}
            for fp, per_test in ranked]
