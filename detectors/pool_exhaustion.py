"""pool_exhaustion at run time: client connections close to what the server accepts.

The limit is max_connections minus the slots reserved for superusers (and, from PostgreSQL 16,
for roles with pg_use_reserved_connections); past it, new connections fail with "too many
clients". Counted over the whole server, since every database shares the limit.
"""

from __future__ import annotations

from collections import Counter

from pglab.lab.core.findings import Finding
from pglab.lab.runtime.registry import finding
from pglab.lab.runtime.stats import Window

REFUSALS = ("too many clients", "remaining connection slots are reserved")
THRESHOLDS = {
    "warn_fraction": 0.85,
    "error_fraction": 0.95,
}


def check_stats(window: Window, limits: dict[str, float]) -> list[Finding]:
    sessions = [row for row in window.after.activity if row["backend_type"] == "client backend"]
    used = len(sessions) + 1  # pglab's own connection takes a slot too
    limit = window.after.max_client_connections
    fraction = used / limit if limit > 0 else 1.0
    if fraction < limits["warn_fraction"]:
        return []
    by_state = Counter(row["state"] or "unknown" for row in sessions)
    by_application = Counter(row["application_name"] or "?" for row in sessions)
    return [finding(
        "pool_exhaustion",
        f"{used} client connections of the {limit} the server accepts ({fraction:.0%}); "
        f"{by_state.get('idle', 0)} of them idle: the next connection may fail with \"too many clients\"",
        "error" if fraction >= limits["error_fraction"] else "warning", subject="server connections",
        connections=used, limit=limit, max_connections=int(window.after.settings["max_connections"]),
        by_state=dict(by_state), by_application=dict(by_application.most_common(5)),
    )]


def check_refusal(message: str, limits: dict[str, float]) -> list[Finding]:
    """When the server will not even let pglab in, the refusal is the evidence."""
    if not any(refusal in message for refusal in REFUSALS):
        return []
    return [finding(
        "pool_exhaustion", f"the server refused a new connection: {message}", "error",
        subject="server connections", refusal=message,
    )]
