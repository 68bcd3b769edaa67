"""serializable_no_retry at run time: transactions rolling back while SERIALIZABLE ones run.

Postgres counts no serialization failure as such; what the statistics show is rolled-back
transactions (pg_stat_database.xact_rollback) in a window where SERIALIZABLE is in use (a
`BEGIN ... SERIALIZABLE` statement, SIReadLock predicate locks, or the default isolation). Each of
those failures is an error the application must retry; without a retry it reaches the user.
"""

from __future__ import annotations

from pglab.lab.core.findings import Finding
from pglab.lab.runtime.registry import finding
from pglab.lab.runtime.stats import Window

THRESHOLDS = {
    "min_rollbacks": 3,
    "min_rollback_fraction": 0.01,  # of the transactions in the window
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
    database = window.database()
    rollbacks = int(database["xact_rollback"])
    transactions = window.transactions
    if rollbacks < limits["min_rollbacks"] or rollbacks < limits["min_rollback_fraction"] * transactions:
        return []
    reasons = serializable_evidence(window)
    if not reasons:
        return []
    return [finding(
        "serializable_no_retry",
        f"{rollbacks:,.0f} of {transactions:,.0f} transactions rolled back while SERIALIZABLE transactions ran "
        f"({'; '.join(reasons)}): serialization failures (SQLSTATE 40001) that must be retried",
        "warning", subject=f"database {window.after.database}", rollbacks=rollbacks, transactions=transactions,
        deadlocks=database["deadlocks"], serializable=reasons,
    )]
