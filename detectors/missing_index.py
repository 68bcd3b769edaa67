"""missing_index at run time: a scan whose Filter throws away most of a large table, and tables
read sequentially over and over between two snapshots.

A sequential scan alone proves nothing (on a 200-row table it is the best plan), and an index
scan of the primary key followed by a heavy Filter is the same disease, so the rule looks at the
Filter's waste on any scan, gated on table size and on the absolute number of rows thrown away.
"""

from __future__ import annotations

from pglab.lab.core.findings import Finding
from pglab.lab.runtime.plans import PlanView, iter_scans
from pglab.lab.runtime.registry import finding
from pglab.lab.runtime.stats import Window

# Parameters for the statements of fixes/missing_index.sql, with which the tests prove this plan rule.
EXAMPLE_PARAMS: dict[str, object] = {"conversation_id": 7}
THRESHOLDS = {
    "min_table_rows": 10_000,  # smaller tables are scanned faster than an index is descended
    "warn_removed_fraction": 0.5,
    "error_removed_fraction": 0.9,
    "min_rows_removed": 1_000,  # over all loops
    "min_seq_scans": 10,  # stats rule: full scans of one large table within the window
}


def check_plan(view: PlanView, limits: dict[str, float]) -> list[Finding]:
    findings = []
    for node in iter_scans(view):
        if not node.filter or view.table_size(node) < limits["min_table_rows"]:
            continue
        fraction, removed = view.removed_fraction(node)
        if fraction < limits["warn_removed_fraction"] or removed < limits["min_rows_removed"]:
            continue
        severity = "error" if fraction >= limits["error_removed_fraction"] else "warning"
        estimated = "" if view.analyzed else " (estimated)"
        findings.append(finding(
            "missing_index",
            f"{node.type} on {node.relation} reads rows only to discard {fraction:.1%} of them{estimated}: "
            f"{removed:,.0f} rows thrown away by `{node.filter}`; no index serves this filter",
            severity, subject=f"plan node {node.path}", plan_excerpt=node.excerpt(), relation=node.relation,
            table_rows=view.table_size(node), removed_fraction=round(fraction, 4), rows_removed=removed,
        ))
    return findings


def check_stats(window: Window, limits: dict[str, float]) -> list[Finding]:
    """Counted in tables' worth of rows read sequentially, not in seq_scan: a parallel seq scan adds
    one to seq_scan per worker while reading the table once, and a scan stopped by LIMIT reads a
    fraction of it, so seq_tup_read / rows is the number of full scans whatever the plan."""
    findings = []
    described = window.describe()
    for table in window.tables():
        rows = table["reltuples"]
        if rows < limits["min_table_rows"]:
            continue
        full_scans = table["seq_tup_read"] / rows
        if full_scans < limits["min_seq_scans"]:
            continue
        findings.append(finding(
            "missing_index",
            f"table {table['name']} ({rows:,.0f} rows) was read sequentially {full_scans:,.0f} times over "
            f"({table['seq_tup_read']:,.0f} rows read in {table['seq_scan']:,.0f} scans) against "
            f"{table['idx_scan']:,.0f} index scans, {_period(described)}",
            "warning", subject=f"table {table['name']}", relation=table["name"], seq_scan=table["seq_scan"],
            full_scans=round(full_scans, 1), seq_tup_read=table["seq_tup_read"], idx_scan=table["idx_scan"],
            table_rows=rows, window_seconds=window.seconds, window=described,
        ))
    return findings


def _period(described: dict[str, object]) -> str:
    seconds = described.get("seconds")
    if not isinstance(seconds, int | float):
        return described["counters"]  # type: ignore[return-value]
    span = f"{seconds:,.0f} s" if seconds < 7200 else f"{seconds / 3600:,.1f} hours"
    return f"in the last {span} ({described['counters']})"
