"""missing_timeouts at run time: no statement or idle-in-transaction timeout, and sessions that
run or sit long enough to show it.

The settings read are those a new session of this database and role gets (server, database and
role defaults). A timeout at 0 alone is a risk, not an incident; it is reported when a statement
has run, or a transaction sat idle, for longer than `min_seconds`.
"""

from __future__ import annotations

from pglab.lab.core.findings import Finding
from pglab.lab.core.sql import short
from pglab.lab.runtime.registry import finding
from pglab.lab.runtime.stats import Window

THRESHOLDS = {"min_seconds": 30.0}


def check_stats(window: Window, limits: dict[str, float]) -> list[Finding]:
    settings = window.after.settings
    statement_off = settings.get("statement_timeout") == "0"
    idle_off = settings.get("idle_in_transaction_session_timeout") == "0"
    findings = []
    for session in window.sessions():
        state = session["state"] or ""
        if state == "active" and statement_off:
            seconds, what = session["query_seconds"] or 0.0, "has been running"
        elif state.startswith("idle in transaction") and idle_off:
            seconds, what = session["state_seconds"] or 0.0, "has sat idle in transaction"
        else:
            continue
        if seconds < limits["min_seconds"]:
            continue
        findings.append(finding(
            "missing_timeouts",
            f"session {session['pid']} {what} for {seconds:,.1f} s (`{short(session['query'] or '', 80)}`) and "
            "nothing will stop it: statement_timeout and idle_in_transaction_session_timeout are 0",
            "warning", subject=f"session {session['pid']}", source=session["query"], pid=session["pid"],
            seconds=round(seconds, 1), settings={name: settings.get(name) for name in (
                "statement_timeout", "idle_in_transaction_session_timeout", "lock_timeout", "transaction_timeout")},
        ))
    return findings
