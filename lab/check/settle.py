"""The last step before findings are shown: per-file ignores, then one finding per rule per line.

Both run after the cache and the inline suppressions, so changing `per-file-ignores` needs no
re-analysis, and two hooks of one rule that trip on the same line (a statement seen through two
calls, a pool created with two missing settings) read as one problem, as the user sees it.
"""

from __future__ import annotations

from pglab.lab.check.config import Config
from pglab.lab.core.findings import Finding


def settle(findings: list[Finding], config: Config) -> list[Finding]:
    kept: list[Finding] = []
    seen: set[tuple[str, str | None, int | None]] = set()
    ignored: dict[str | None, set[str]] = {}
    for finding in findings:
        if finding.path not in ignored:
            ignored[finding.path] = config.ignored_here(finding.path)
        if finding.id in ignored[finding.path]:
            continue
        key = (finding.id, finding.path, finding.line) if finding.path else (finding.id, None, id(finding))
        if key in seen:
            continue
        seen.add(key)
        kept.append(finding)
    return kept
