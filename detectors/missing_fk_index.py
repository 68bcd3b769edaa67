"""missing_fk_index at run time: a foreign key whose columns lead no index, on a large table.

Read from the catalog, and judged by what the window shows. Every DELETE (or key UPDATE) of a
parent row makes Postgres look for child rows still pointing at it; without an index on the child's
columns, each of those lookups is a sequential scan of the child. Over a window of the server's
life (two snapshots), a key is reported when its parent lost rows and its child was scanned in that
window: the harm happening. Over the counters' whole history (no earlier snapshot) or a window of
at least `min_latent_seconds`, an unused key is reported too, as a risk: a short window without
parent deletes says nothing about the nightly cleanup. Small child tables are left alone.

Where pg_stat_statements tracks nested statements (`track = all`), the foreign-key check Postgres
runs (`SELECT 1 FROM ONLY child x WHERE $1 = col FOR KEY SHARE OF x`) is found by its text, and its
calls and mean time are part of the evidence.
"""

from __future__ import annotations

import re
from typing import Any

from pglab.lab.core.findings import Finding
from pglab.lab.runtime.registry import finding
from pglab.lab.runtime.stats import Window

THRESHOLDS = {
    "min_table_rows": 10_000,
    "min_latent_seconds": 86_400,  # a day: one cycle of a daily workload, deletes included
}


def _relname(qualified: str) -> str:
    """`pglab_lab.users` or `"Users"` -> the bare name the table statistics are keyed by."""
    return qualified.rsplit(".", 1)[-1].strip('"')


def _check_statement(window: Window, key: dict[str, Any]) -> dict[str, Any] | None:
    """The window's calls of the foreign-key check of `key`, when pg_stat_statements saw them."""
    column = re.escape(key["columns"][0])
    pattern = re.compile(rf'FROM ONLY\s+(?:"?\w+"?\.)?"?{re.escape(key["table_name"])}"?\s+x\s+WHERE\s+.*"?{column}"?',
                         re.IGNORECASE | re.DOTALL)
    for statement in window.statements("select"):
        if pattern.search(statement["query"]):
            return {"calls": int(statement["calls"]), "mean_ms": round(statement["mean_ms"], 2)}
    return None


def check_stats(window: Window, limits: dict[str, float]) -> list[Finding]:
    tables = {table["name"]: table for table in window.tables()}
    seconds = window.seconds
    latent = seconds is None or seconds >= limits["min_latent_seconds"]
    findings = []
    for key in window.after.foreign_keys:
        if key["indexed"] or key["table_rows"] < limits["min_table_rows"]:
            continue
        child = tables.get(key["table_name"], {})
        deleted = (tables.get(_relname(key["referenced"]), {}).get("n_tup_del") or 0)
        scans = child.get("seq_scan") or 0
        if deleted and scans:
            findings.append(_exercised(window, key, child, deleted, scans))
        elif latent:
            findings.append(_latent(key, child))
    return findings


def _exercised(window: Window, key: dict[str, Any], child: dict[str, Any], deleted: int, scans: int) -> Finding:
    columns = ", ".join(key["columns"])
    checks = _check_statement(window, key)
    how = (f"; the foreign-key check ran {checks['calls']:,} times, {checks['mean_ms']:,.1f} ms each" if checks
           else "")
    return finding(
        "missing_fk_index",
        f"{deleted:,.0f} rows were deleted from {key['referenced']} while {key['table_name']}({columns}) has no index "
        f"led by its foreign key {key['name']}: {key['table_name']} was scanned sequentially {scans:,.0f} times "
        f"({child.get('seq_tup_read') or 0:,.0f} rows read){how}",
        "error", subject=f"foreign key {key['name']}", relation=key["table_name"], columns=key["columns"],
        referenced=key["referenced"], table_rows=key["table_rows"], parent_rows_deleted=deleted,
        child_seq_scans=scans, child_rows_read=child.get("seq_tup_read"), **({"fk_checks": checks} if checks else {}),
    )


def _latent(key: dict[str, Any], child: dict[str, Any]) -> Finding:
    columns = ", ".join(key["columns"])
    return finding(
        "missing_fk_index",
        f"foreign key {key['name']} on {key['table_name']}({columns}) has no index led by its columns: every "
        f"delete from {key['referenced']} and every join to it scans {key['table_rows']:,.0f} rows",
        "warning", subject=f"foreign key {key['name']}", relation=key["table_name"], columns=key["columns"],
        referenced=key["referenced"], table_rows=key["table_rows"], child_seq_scans=child.get("seq_scan"),
    )
