"""missing_fk_index at run time: a foreign key whose columns lead no index, on a large table.

Read from the catalog. Every DELETE or key UPDATE on the parent must look for referencing rows,
and every join from parent to children filters on these columns; without an index each of them
scans the child table. Small child tables are left alone.
"""

from __future__ import annotations

from pglab.lab.core.findings import Finding
from pglab.lab.runtime.registry import finding
from pglab.lab.runtime.stats import Window

THRESHOLDS = {"min_table_rows": 10_000}


def check_stats(window: Window, limits: dict[str, float]) -> list[Finding]:
    tables = {table["name"]: table for table in window.tables()}
    findings = []
    for key in window.after.foreign_keys:
        if key["indexed"] or key["table_rows"] < limits["min_table_rows"]:
            continue
        columns = ", ".join(key["columns"])
        child = tables.get(key["table_name"], {})
        findings.append(finding(
            "missing_fk_index",
            f"foreign key {key['name']} on {key['table_name']}({columns}) has no index led by its columns: every "
            f"delete from {key['referenced']} and every join to it scans {key['table_rows']:,.0f} rows",
            "warning", subject=f"foreign key {key['name']}", relation=key["table_name"], columns=key["columns"],
            referenced=key["referenced"], table_rows=key["table_rows"], child_seq_scans=child.get("seq_scan"),
        ))
    return findings
