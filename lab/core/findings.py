"""The one shape every finding has, whoever found it (`pglab check`, `pglab diagnose`, the pytest
plugin), so that every output format and every consumer handles all of them alike.

Static findings point at a file position; runtime findings have no file and carry `evidence`
(the fingerprint, a plan excerpt, counters) instead.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

SEVERITIES = ("error", "warning", "info")


@dataclass(frozen=True)
class Finding:
    id: str  # catalogue id, e.g. "missing_index"
    code: str  # catalogue code, e.g. "PGL001"
    message: str  # the consequence, in one sentence
    severity: str = "warning"  # one of SEVERITIES
    path: str | None = None  # file, for static findings
    line: int | None = None  # 1-based
    column: int | None = None  # 1-based
    fix_hint: str = ""  # one line: what to do
    rewrite: str | None = None  # mechanically rewritten SQL, when there is one
    source: str | None = None  # the offending source line or statement
    evidence: dict[str, Any] = field(default_factory=dict)  # runtime: fingerprint, plan excerpt, counters

    def as_json(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value not in (None, "", {})}
