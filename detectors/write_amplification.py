"""write_amplification at run time: unused or duplicate indexes on tables that are written a lot.

Every INSERT, and every UPDATE that cannot be HOT, writes every index of the table. An index no
query used in the window, or one whose columns lead another index, is paid for on each write and
never repaid. Unique and constraint indexes are kept (they enforce something), and so are indexes
led by a foreign key's columns (they serve the key's checks, which idx_scan does not count).

Index writes are inserts and non-HOT updates: a DELETE only marks the heap tuple dead and writes
no index entry, and a HOT update writes none either. "Unused" is a claim about a period: an index
not scanned in five seconds may serve a nightly report, so it is made only when the counters cover
at least `min_unused_seconds` (a day: one full cycle of a daily workload); a duplicate index is
redundant whatever the window. A table is write-heavy when the window saw `min_writes` index
writes, or, over a window of seconds (a lab run, a short watch of a live server), when it took
them at `min_writes_per_second` over at least `min_rate_seconds`: a count alone would call a
table taking 150 rows a second quiet for its first six seconds, and a window of a moment is too
short to call anything a rate.
"""

from __future__ import annotations

from typing import Any

from pglab.lab.core.findings import Finding
from pglab.lab.runtime.registry import finding
from pglab.lab.runtime.stats import Window

THRESHOLDS = {
    "min_writes": 1_000,  # index writes (inserts + non-HOT updates) in the window, however long
    "min_writes_per_second": 50,  # ... or this rate (4.3 million rows a day) over a window at least
    "min_rate_seconds": 3,  # this long
    "min_unused_seconds": 86_400,  # an index is called unused only over a window this long
}


def _method(definition: str) -> str:
    return definition.split(" USING ", 1)[1].split(" ", 1)[0] if " USING " in definition else ""


def _covered_by(index: dict[str, Any], others: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Another index of the same kind whose leading columns are this one's: this one is redundant."""
    columns = index["columns"]
    for other in others:
        if other["name"] == index["name"] or _method(other["definition"]) != _method(index["definition"]):
            continue
        if None not in columns and other["columns"][: len(columns)] == columns and (
                len(other["columns"]) > len(columns) or other["name"] < index["name"]):
            return other
    return None


def _serves_foreign_key(index: dict[str, Any], window: Window) -> bool:
    if None in index["columns"]:
        return False
    return any(key["table_name"] == index["table_name"]
               and sorted(index["columns"][: len(key["columns"])]) == sorted(key["columns"])
               for key in window.after.foreign_keys)


def _write_heavy(writes: float, seconds: float | None, limits: dict[str, float]) -> bool:
    if writes >= limits["min_writes"]:
        return True
    return seconds is not None and seconds >= limits["min_rate_seconds"] and (
        writes >= limits["min_writes_per_second"] * seconds)


def check_stats(window: Window, limits: dict[str, float]) -> list[Finding]:
    scans = window.index_scans()
    covered = window.describe()["seconds"]
    long_enough = covered is not None and covered >= limits["min_unused_seconds"]
    by_table: dict[str, list[dict[str, Any]]] = {}
    for index in window.after.indexes:
        by_table.setdefault(index["table_name"], []).append(index)
    findings = []
    for table in window.tables():
        writes = table["n_tup_ins"] + table["n_tup_upd"] - table["n_tup_hot_upd"]
        if not _write_heavy(writes, covered, limits):
            continue
        indexes = by_table.get(table["name"], [])
        redundant = {}
        for index in indexes:
            if index["is_unique"] or index["is_primary"] or index["backs_constraint"] or index["is_partial"]:
                continue
            twin = _covered_by(index, indexes)
            if twin is not None:
                redundant[index["name"]] = f"duplicates the leading columns of {twin['name']}"
            elif long_enough and scans.get(index["name"], 0) == 0 and not _serves_foreign_key(index, window):
                redundant[index["name"]] = f"no scan in {covered / 3600:,.1f} hours"
        if not redundant:
            continue
        hot = table["n_tup_hot_upd"] / table["n_tup_upd"] if table["n_tup_upd"] else None
        hot_text = f"; {hot:.0%} of updates were HOT" if hot is not None else ""
        findings.append(finding(
            "write_amplification",
            f"{table['name']} took {writes:,.0f} index-writing row changes (inserts, non-HOT updates), each also "
            f"written into {len(redundant)} index(es) "
            f"that earn nothing ({', '.join(sorted(redundant))}){hot_text}",
            "warning", subject=f"table {table['name']}", relation=table["name"], writes=writes,
            redundant_indexes=redundant, hot_update_ratio=None if hot is None else round(hot, 3),
            index_count=len(indexes),
        ))
    return findings
