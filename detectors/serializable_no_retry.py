"""serializable_no_retry at run time: serialization failures (SQLSTATE 40001) in the window.

Each one is an error the application must retry; without a retry it reaches the user. Postgres
keeps no counter of them: rolled-back transactions (pg_stat_database.xact_rollback) also count
every read-only SERIALIZABLE transaction a pool ends with ROLLBACK, which is harmless. The server
log names each failure ("could not serialize access"), so the failures counted here are those the
log shows between the two snapshots, from sessions of this database only (the log is the whole
server's; see `pglab.lab.runtime.serverlog`). Where the log cannot be read, or its lines do not name
their database, the rule stays quiet (and diagnose says so) rather than guess from rollbacks or
count other databases' failures.
"""

from __future__ import annotations

from pglab.lab.core.findings import Finding
from pglab.lab.runtime.registry import finding
from pglab.lab.runtime.stats import Window

THRESHOLDS = {
    "min_failures": 3,
    "min_failure_fraction": 0.01,  # of the transactions in the window
}


def serializable_evidence(window: Window) -> list[str]:
    reasons = []
    if window.after.settings.get("default_transaction_isolation") == "serializable":
        reasons.append("default_transaction_isolation is serializable")
    if window.after.predicate_locks:
        reasons.append(f"{window.after.predicate_locks} SIReadLock predicate locks held")
    calls = sum(s["calls"] for s in window.statements() if "serializable" in s["query"].lower())
    if calls:
        reasons.append(f"{calls:,.0f} statements set SERIALIZABLE")
    return reasons


def check_stats(window: Window, limits: dict[str, float]) -> list[Finding]:
    failures = window.serialization_failures
    transactions = window.transactions
    if failures is None or failures < max(limits["min_failures"], limits["min_failure_fraction"] * transactions):
        return []
    reasons = serializable_evidence(window)
    context = f" ({'; '.join(reasons)})" if reasons else ""
    return [finding(
        "serializable_no_retry",
        f"{failures:,.0f} serialization failures (SQLSTATE 40001) in {transactions:,.0f} transactions{context}: "
        "each is an error the application must retry, or its user sees it",
        "warning", subject=f"database {window.after.database}", serialization_failures=failures,
        transactions=transactions, rollbacks=int(window.database()["xact_rollback"]), serializable=reasons,
    )]
