"""long_poll_connection at run time: a session that keeps one transaction open while it polls.

A polling loop inside a held transaction looks like no other session: its transaction is old,
yet it keeps starting new SELECTs long after that transaction began. (A transaction that ran its
work and then went quiet is streaming_txn instead.)
"""

from __future__ import annotations

from pglab.lab.core.findings import Finding
from pglab.lab.core.sql import short, statement_kind
from pglab.lab.runtime.registry import finding
from pglab.lab.runtime.stats import Window

SUPERSEDES = ("streaming_txn",)
THRESHOLDS = {"min_transaction_seconds": 5.0}


def check_stats(window: Window, limits: dict[str, float]) -> list[Finding]:
    findings = []
    for session in window.sessions():
        held = session["xact_seconds"] or 0.0
        since_last = session["query_seconds"] or 0.0
        if held < limits["min_transaction_seconds"] or held - since_last < limits["min_transaction_seconds"] / 2:
            continue
        if session["state"] not in ("active", "idle in transaction"):
            continue
        if statement_kind(session["query"] or "") != "select":
            continue
        findings.append(finding(
            "long_poll_connection",
            f"session {session['pid']} has held one transaction for {held:,.1f} s and is still issuing "
            f"`{short(session['query'] or '', 80)}`: a polling loop that keeps its connection and snapshot",
            "warning", subject=f"session {session['pid']}", source=session["query"], pid=session["pid"],
            transaction_seconds=round(held, 2), last_query_started_seconds_ago=round(since_last, 2),
        ))
    return findings
