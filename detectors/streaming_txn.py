"""streaming_txn at run time: sessions idle in transaction, timed from `state_change`.

`xact_start` would also count the time the transaction spent working; what hurts is the time it
sat idle holding its locks and snapshot (and a pool slot) while the application did something
else, which is the time since its state last changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pglab.lab.core.findings import Finding
from pglab.lab.core.sql import short
from pglab.lab.runtime.registry import finding
from pglab.lab.runtime.stats import Window

if TYPE_CHECKING:
    from pglab.lab.plugin.records import Transaction
    from pglab.lab.plugin.settings import Settings

THRESHOLDS = {
    "warn_idle_seconds": 1.0,
    "error_idle_seconds": 10.0,
}


def check_stats(window: Window, limits: dict[str, float]) -> list[Finding]:
    findings = []
    for session in window.sessions():
        idle = session["state_seconds"] or 0.0
        if not (session["state"] or "").startswith("idle in transaction") or idle < limits["warn_idle_seconds"]:
            continue
        findings.append(finding(
            "streaming_txn",
            f"session {session['pid']} ({session['application_name'] or session['role']}) has sat idle in "
            f"transaction for {idle:,.1f} s after `{short(session['query'] or '', 80)}`, holding its locks, "
            "its snapshot and a connection",
            "error" if idle >= limits["error_idle_seconds"] else "warning", subject=f"session {session['pid']}",
            source=session["query"], pid=session["pid"], idle_in_transaction_seconds=round(idle, 2),
            transaction_seconds=round(session["xact_seconds"] or 0.0, 2),
        ))
    return findings


def check_captured_transactions(transactions: Sequence[Transaction], settings: Settings) -> list[Finding]:
    """In a test (the pytest plugin): transactions idle between statements while the client did
    something else, or held open too long; both keep locks and a snapshot pinned and a pooled
    connection checked out. A transaction a fixture opened before the test (the
    roll-back-after-each-test pattern) is the harness's, not the code's."""
    from pglab.lab.plugin.captured import captured_finding

    findings = []
    for txn in transactions:
        if txn.inherited:
            continue
        site = txn.call_site
        evidence = {"duration_s": round(txn.duration, 3), "idle_gap_s": round(txn.idle_gap, 3),
                    "statements": txn.statements, "call_site": site, "left_open": txn.left_open}
        if settings.txn_idle_seconds and txn.idle_gap > settings.txn_idle_seconds:
            message = (f"transaction opened at {site} sat idle for {txn.idle_gap:.2f} s between {txn.gap_from} and "
                       f"{txn.gap_to} (limit {settings.txn_idle_seconds} s): non-database work inside a transaction")
        elif settings.txn_max_seconds and txn.duration > settings.txn_max_seconds:
            state = "still open at the end of the test" if txn.left_open else f"{txn.statements} statements"
            message = (f"transaction opened at {site} stayed open {txn.duration:.2f} s "
                       f"(limit {settings.txn_max_seconds} s; {state})")
        else:
            continue
        findings.append(captured_finding("streaming_txn", "transactions", message, txn.path, txn.line, None,
                                         **evidence))
    return findings
