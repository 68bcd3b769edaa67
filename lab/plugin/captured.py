"""Captured statements as the detectors' hooks read them (`check_captured(groups, settings)`,
`check_captured_transactions(transactions, settings)` in `detectors/<id>.py`): statements grouped
by shape and call chain, and the helpers those hooks build their findings with, so each id's
judgement lives with its detector and the plugin only collects and dispatches."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from pglab.lab.core.findings import Finding
from pglab.lab.plugin.records import Statement
from pglab.lab.plugin.settings import Settings
from pglab.lab.plugin.shapes import Shape, calls_of, counted, shape_of
from pglab.lab.runtime.registry import finding


@dataclass
class Group:
    """Counted statements of one shape sent from one call chain (the same user frames, innermost
    first): a helper called from six lines is six groups, a loop calling it is one."""

    first: Statement
    shape: Shape
    calls: int = 0

    @property
    def where(self) -> str:
        """The chain that sent it: the helper's line, then the line that called the helper."""
        return self.first.call_chain


def groups(statements: Sequence[Statement]) -> list[Group]:
    """Counted statements grouped by (fingerprint, call chain), most frequent first."""
    found: dict[tuple[str, Any], Group] = {}
    for statement in statements:
        if not counted(statement):
            continue
        shape = shape_of(statement.sql, statement.has_params)
        key = (shape.fingerprint, statement.chain or statement.source)
        group = found.get(key)
        if group is None:
            group = found[key] = Group(first=statement, shape=shape)
        group.calls += calls_of(statement)
    return sorted(found.values(), key=lambda g: -g.calls)


def captured_finding(entry_id: str, check: str, message: str, path: str | None, line: int | None,
                     source: str | None, **evidence: Any) -> Finding:
    """A finding of the plugin's: the catalogue's code and fix hint, at the user's line."""
    found = finding(entry_id, message, "error", subject=f"{path}:{line}" if path else "", source=source, **evidence)
    return dataclasses.replace(found, path=path, line=line, evidence={"check": check, **found.evidence})


def repeat_findings(entry_id: str, groups: Sequence[Group], commands: Collection[str], settings: Settings
                    ) -> list[Finding]:
    """One finding per group of `commands` that ran at least `settings.n_plus_one` times from one
    call chain: a loop sending one statement per row (Prosopite's rule)."""
    threshold = settings.n_plus_one
    if not threshold:
        return []
    findings = []
    for group in groups:
        if group.calls < threshold or group.shape.command not in commands:
            continue
        first = group.first
        findings.append(captured_finding(
            entry_id, "repeats",
            f"the same {group.shape.command.upper()} ran {group.calls} times from {group.where} "
            f"(threshold {threshold}): one statement per row",
            first.path, first.line, first.sql,
            fingerprint=group.shape.fingerprint, count=group.calls, call_site=first.call_site,
            call_chain=[f"{path}:{line}" for path, line, _ in first.chain],
        ))
    return findings
