"""missing_timeouts at run time: work that nothing stops, in the sessions as they are.

Another session's settings cannot be read (pg_settings shows the reader's own), but their effect
can: a session idle in transaction for S seconds has no idle_in_transaction_session_timeout, or
one longer than S. Two signs are reported:
- a statement running, or a transaction sitting idle, for longer than `min_seconds` while the
  defaults a new session gets (server, database, role) leave that timeout at 0;
- a transaction idle for longer than `min_blocking_seconds` while other sessions queue on its
  locks, and no default timeout of that length or shorter applies: an abandoned transaction
  starving its waiters is an incident now, however the application set its sessions up.
"""

from __future__ import annotations

from typing import Any

from pglab.lab.core.findings import Finding
from pglab.lab.core.sql import short
from pglab.lab.runtime.registry import finding
from pglab.lab.runtime.stats import Window

THRESHOLDS = {"min_seconds": 30.0, "min_blocking_seconds": 2.0}
REPORTED = ("statement_timeout", "idle_in_transaction_session_timeout", "lock_timeout", "transaction_timeout")


def _milliseconds(value: str | None) -> float:
    """A timeout setting as pg_settings gives it (milliseconds, no unit); 0 when unset."""
    try:
        return float(value or 0)
    except ValueError:
        return 0.0


def _unbounded(default_ms: float, seconds: float) -> bool:
    """No default timeout would have ended something that has lasted `seconds`."""
    return default_ms == 0 or seconds * 1000 >= default_ms


def _waiters(window: Window) -> dict[int, int]:
    """pid -> how many sessions wait on its locks."""
    counts: dict[int, int] = {}
    for row in window.after.blocked or []:
        for blocker in row["blockers"] or []:
            counts[blocker] = counts.get(blocker, 0) + 1
    return counts


def _runaway(session: dict[str, Any], settings: dict[str, Any], waiters: int,
             limits: dict[str, float]) -> tuple[float, str] | None:
    """(seconds, what) when this session shows a missing timeout, else None."""
    state = session["state"] or ""
    statement_ms = _milliseconds(settings.get("statement_timeout"))
    idle_ms = _milliseconds(settings.get("idle_in_transaction_session_timeout"))
    if state == "active" and statement_ms == 0:
        seconds = session["query_seconds"] or 0.0
        return (seconds, "has been running") if seconds >= limits["min_seconds"] else None
    if not state.startswith("idle in transaction"):
        return None
    seconds = session["state_seconds"] or 0.0
    if idle_ms == 0 and seconds >= limits["min_seconds"]:
        return seconds, "has sat idle in transaction"
    if waiters and seconds >= limits["min_blocking_seconds"] and _unbounded(idle_ms, seconds):
        return seconds, f"has sat idle in transaction, with {waiters} session(s) queued on its locks,"
    return None


def check_stats(window: Window, limits: dict[str, float]) -> list[Finding]:
    settings = window.after.settings
    waiters = _waiters(window)
    findings = []
    for session in window.sessions():
        found = _runaway(session, settings, waiters.get(session["pid"], 0), limits)
        if found is None:
            continue
        seconds, what = found
        findings.append(finding(
            "missing_timeouts",
            f"session {session['pid']} {what} for {seconds:,.1f} s (`{short(session['query'] or '', 80)}`) and "
            "nothing stopped it: its statement or idle-in-transaction timeout is 0 or longer than that",
            "warning", subject=f"session {session['pid']}", source=session["query"], pid=session["pid"],
            seconds=round(seconds, 1), waiters=waiters.get(session["pid"], 0),
            settings={name: settings.get(name) for name in REPORTED},
        ))
    return findings
