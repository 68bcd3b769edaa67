"""streaming_txn at run time: sessions idle in transaction, timed from `state_change`.

`xact_start` would also count the time the transaction spent working; what hurts is the time it
sat idle holding its locks and snapshot (and a pool slot) while the application did something
else, which is the time since its state last changed.
"""

from __future__ import annotations

from pglab.lab.core.findings import Finding
from pglab.lab.core.sql import short
from pglab.lab.runtime.registry import finding
from pglab.lab.runtime.stats import Window

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
