"""write_contention at run time: sessions queued on row or table locks, grouped by who blocks them.

Several sessions waiting on the same blocker for the same relation is the lock convoy that a hot
parent row (a counter, an updated_at) creates when every write also updates it.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from pglab.lab.core.findings import Finding
from pglab.lab.core.sql import short
from pglab.lab.runtime.registry import finding
from pglab.lab.runtime.stats import Window

THRESHOLDS = {
    "min_waiters": 2,  # sessions queued behind one blocker on one relation
    "min_wait_seconds": 1.0,  # or one session waiting this long
}


def root_blocker(pid: int, blocked: dict[int, list[int]]) -> int:
    """Follow the queue to its head: the session everyone waits behind is the one not waiting."""
    seen = {pid}
    while blocked.get(pid):
        pid = blocked[pid][0]
        if pid in seen:  # a deadlock cycle: the server will break it; report where we are
            break
        seen.add(pid)
    return pid


def check_stats(window: Window, limits: dict[str, float]) -> list[Finding]:
    blocked = {waiter["pid"]: list(waiter["blockers"] or []) for waiter in window.after.blocked}
    groups: dict[tuple[int, str], list[dict[str, Any]]] = defaultdict(list)
    for waiter in window.after.blocked:
        groups[(root_blocker(waiter["pid"], blocked), waiter["relation"] or "?")].append(waiter)
    blockers = {row["pid"]: row for row in window.after.activity}
    findings = []
    for (blocker, relation), waiters in sorted(groups.items()):
        longest = max(waiter["wait_seconds"] or 0.0 for waiter in waiters)
        if len(waiters) < limits["min_waiters"] and longest < limits["min_wait_seconds"]:
            continue
        holder = blockers.get(blocker, {})
        findings.append(finding(
            "write_contention",
            f"{len(waiters)} session(s) wait for locks on {relation} held by pid {blocker} "
            f"(longest {longest:,.1f} s): writes queue on the same rows",
            "error" if len(waiters) >= 2 * limits["min_waiters"] else "warning",
            subject=f"locks on {relation} held by {blocker}", source=waiters[0]["query"], relation=relation,
            blocker_pid=blocker, blocker_query=short(holder.get("query") or "", 200),
            blocker_state=holder.get("state"), waiting_pids=[waiter["pid"] for waiter in waiters],
            longest_wait_seconds=round(longest, 2),
        ))
    return findings
