"""What the plugin keeps of a session, and how it shows it: the terminal summary and the
`--pglab-report` JSON. Under pytest-xdist each worker keeps its own results and hands them to the
controller as plain JSON (`workeroutput`), which merges them before reporting."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pglab.lab.core.sql import short


@dataclass
class TestRecord:
    """What the report keeps of one test."""

    __test__ = False
    nodeid: str
    statements: int
    selects: int
    writes: int
    transactions: int
    seconds_in_database: float
    plans_explained: int = 0
    findings: list[dict[str, Any]] = field(default_factory=list)
    allowed: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # statements whose plan could not be read
    caveats: list[str] = field(default_factory=list)  # plans read, but blind to the test's rows or not executed


@dataclass
class Results:
    """The session's results: per test records, calls per statement shape, notes."""

    records: list[TestRecord] = field(default_factory=list)
    calls: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))  # fingerprint -> test -> n
    texts: dict[str, str] = field(default_factory=dict)  # fingerprint -> normalised shape
    notes: set[str] = field(default_factory=set)

    def dumps(self) -> str:
        return json.dumps({"records": [asdict(r) for r in self.records], "texts": self.texts,
                           "calls": {fp: dict(per_test) for fp, per_test in self.calls.items()},
                           "notes": sorted(self.notes)}, default=str)

    def merge(self, dumped: str) -> None:
        """Add a worker's results (`dumps` output) to these."""
        data = json.loads(dumped)
        self.records += [TestRecord(**record) for record in data["records"]]
        for fp, per_test in data["calls"].items():
            self.calls[fp].update(per_test)
        for fp, text in data["texts"].items():
            self.texts.setdefault(fp, text)
        self.notes.update(data["notes"])

    def top(self, limit: int) -> list[dict[str, Any]]:
        """Shapes by calls over the session, with their normalised text."""
        ranked = sorted(self.calls.items(), key=lambda item: (-sum(item[1].values()), item[0]))[:limit]
        return [{"fingerprint": fp, "calls": sum(per_test.values()), "tests": len(per_test),
                 "max_in_one_test": max(per_test.values()), "sql": short(self.texts.get(fp, ""), 200)}
                for fp, per_test in ranked]


def summary(results: Results, write: Callable[[str], None]) -> None:
    """The terminal summary: counts, flagged tests, the most repeated shapes, and per test the
    plans that could not be read and those read with a caveat."""
    records = results.records
    flagged = [r for r in records if r.findings]
    total = sum(r.statements for r in records)
    explained = sum(r.plans_explained for r in records)
    write(f"{len(records)} tests checked, {total} statements captured, {explained} plans read, "
          f"{len(flagged)} tests flagged")
    for record in flagged:
        for finding in record.findings:
            where = f"{finding.get('path')}:{finding.get('line')}" if finding.get("path") else ""
            title = f"{finding['code']} {finding['id']}" if finding.get("code") else finding["id"]
            write(f"  {record.nodeid}: {title} {where}".rstrip())
    top = [row for row in results.top(5) if row["max_in_one_test"] > 1]
    if top:
        write("most repeated statements (calls, tests, most in one test):")
        for row in top:
            write(f"  {row['calls']:>6} {row['tests']:>4} {row['max_in_one_test']:>5}  {short(row['sql'], 90)}")
    _per_test(records, "notes", "had statements pglab could not EXPLAIN", write)
    _per_test(records, "caveats", "had plans read with a caveat", write)
    for note in sorted(results.notes):
        write(f"note: {note}")


def _per_test(records: list[TestRecord], kind: str, what: str, write: Callable[[str], None]) -> None:
    """One line per test with notes of `kind`: its first, and how many more the report holds."""
    noted = [(r.nodeid, getattr(r, kind)) for r in records if getattr(r, kind)]
    if not noted:
        return
    write(f"note: {len(noted)} test{'s' if len(noted) != 1 else ''} {what}:")
    for nodeid, notes in noted:
        more = f" (+{len(notes) - 1} more in --pglab-report)" if len(notes) > 1 else ""
        write(f"  {nodeid}: {short(notes[0], 160)}{more}")


def write_json(results: Results, target: str, settings: dict[str, Any]) -> None:
    records = results.records
    report = {
        "settings": settings,
        "summary": {"tests": len(records), "flagged": sum(1 for r in records if r.findings),
                    "statements": sum(r.statements for r in records)},
        "tests": [asdict(record) for record in records],
        "top_fingerprints": results.top(20),
        "notes": sorted(results.notes),
    }
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
