"""Rendering findings: text (in `textreport`), json, sarif, github.

One renderer for every producer of `Finding`s (`pglab check`, `pglab diagnose`, the pytest plugin),
so a user sees the same shapes whoever found the problem. Nothing here assumes a finding has a
file: static findings point at `path:line:column`, runtime findings carry `evidence` instead, and
each format shows whichever the finding has.

Diagnostics are not findings: they say pglab could not read or parse something (or that a
suppression comment suppressed nothing). They are shown, counted in the summary, and never
affect what counts as "something found".
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TextIO

from pglab.lab.core.findings import SEVERITIES, Finding

FORMATS = ("text", "json", "sarif", "github")
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://github.com/pglab/pglab"
_SARIF_LEVEL = {"error": "error", "warning": "warning", "info": "note"}
_GITHUB_LEVEL = {"error": "error", "warning": "warning", "info": "notice"}


@dataclass(frozen=True)
class Diagnostic:
    """Something pglab could not do (unparsable SQL, unreadable file) or a suppression that matched
    nothing. `kind` is a short stable word: "unparsable", "unreadable", "unused-suppression"..."""

    kind: str
    message: str
    path: str | None = None
    line: int | None = None
    column: int | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def finding_json(finding: Finding) -> dict[str, Any]:
    """A finding as JSON, with the contract keys always present (null when a runtime finding has
    no file position) and the optional ones only when set."""
    data: dict[str, Any] = {
        "id": finding.id,
        "code": finding.code,
        "path": finding.path,
        "line": finding.line,
        "column": finding.column,
        "message": finding.message,
        "severity": finding.severity,
    }
    data.update(finding.as_json())
    return data


def summarize(findings: Sequence[Finding], diagnostics: Sequence[Diagnostic] = (),
              extra: dict[str, Any] | None = None) -> dict[str, Any]:
    by_severity = Counter(finding.severity for finding in findings)
    return {
        "findings": len(findings),
        "by_severity": {severity: by_severity.get(severity, 0) for severity in SEVERITIES},
        "by_id": dict(sorted(Counter(finding.id for finding in findings).items())),
        "diagnostics": len(diagnostics),
        **(extra or {}),
    }


def render(findings: Sequence[Finding], fmt: str, *, diagnostics: Sequence[Diagnostic] = (),
           summary: dict[str, Any] | None = None, stream: TextIO | None = None,
           tool: str = "pglab", clean_message: str | None = None) -> None:
    """Write `findings` to `stream` (stdout by default) in `fmt`, one of FORMATS.

    `summary` adds producer-specific figures (files checked, statements, seconds) to the summary;
    `clean_message` is the one line the text format prints when there is nothing to report.
    """
    out = stream or sys.stdout
    full_summary = summarize(findings, diagnostics, summary)
    if fmt == "json":
        document = {
            "findings": [finding_json(finding) for finding in findings],
            "diagnostics": [diagnostic.as_json() for diagnostic in diagnostics],
            "summary": full_summary,
        }
        out.write(json.dumps(document, indent=2, default=str) + "\n")
    elif fmt == "sarif":
        log = sarif(findings, diagnostics, tool=tool)
        if summary and isinstance(summary.get("schema"), dict):
            log["runs"][0]["properties"] = {"schema": summary["schema"]}
        out.write(json.dumps(log, indent=2, default=str) + "\n")
    elif fmt == "github":
        for line in github_lines(findings, diagnostics):
            out.write(line + "\n")
        if described := schema_line(summary):
            out.write(_annotation("notice", described, "pglab schema", None, None, None) + "\n")
    elif fmt == "text":
        from pglab.lab.core.textreport import render_text  # rich and the text layout, only for text

        render_text(findings, diagnostics, full_summary, out, clean_message)
    else:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")


# -- SARIF --------------------------------------------------------------------------------------


def _rule_metadata(finding: Finding) -> dict[str, Any]:
    """Rule descriptor from the catalogue when the id is in it (it always is for pglab's own
    findings; the lookup is lazy so this module works without the catalogue)."""
    from pglab.lab.core.catalogue import find_entry
    from pglab.lab.core.errors import UnknownEntry

    rule: dict[str, Any] = {"id": finding.code or finding.id, "name": finding.id}
    try:
        entry = find_entry(finding.id)
    except UnknownEntry:
        return rule
    rule.update(
        shortDescription={"text": entry.title},
        fullDescription={"text": entry.summary or entry.title},
        help={"text": entry.fix_hint, "markdown": entry.lesson_markdown},
        helpUri=f"{INFORMATION_URI}/blob/main/antipatterns/{entry.id}.py",
        properties={"category": entry.category, "tags": ["postgresql", "performance", entry.category]},
    )
    return rule


def _sarif_result(finding: Finding, rule_index: int) -> dict[str, Any]:
    text = finding.message + (f" Fix: {finding.fix_hint}" if finding.fix_hint else "")
    result: dict[str, Any] = {
        "ruleId": finding.code or finding.id,
        "ruleIndex": rule_index,
        "level": _SARIF_LEVEL.get(finding.severity, "warning"),
        "message": {"text": text},
    }
    if finding.path:
        region: dict[str, Any] = {"startLine": finding.line or 1}
        if finding.column:
            region["startColumn"] = finding.column
        if finding.source:
            region["snippet"] = {"text": finding.source}
        result["locations"] = [{"physicalLocation": {
            "artifactLocation": {"uri": finding.path.replace("\\", "/"), "uriBaseId": "%SRCROOT%"},
            "region": region,
        }}]
        result["partialFingerprints"] = {
            "pglabFinding/v1": f"{finding.id}:{finding.path}:{(finding.source or '').strip()}"
        }
    properties = {key: value for key, value in (("rewrite", finding.rewrite),) if value}
    if finding.evidence:
        properties["evidence"] = finding.evidence
    if properties:
        result["properties"] = properties
    return result


def sarif(findings: Sequence[Finding], diagnostics: Sequence[Diagnostic] = (), *,
          tool: str = "pglab") -> dict[str, Any]:
    """A SARIF 2.1.0 log with one run, as GitHub code scanning accepts it."""
    rules: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    results = []
    for finding in findings:
        key = finding.code or finding.id
        if key not in index:
            index[key] = len(rules)
            rules.append(_rule_metadata(finding))
        results.append(_sarif_result(finding, index[key]))
    notifications = []
    for diagnostic in diagnostics:
        text = f"{diagnostic.kind}: {diagnostic.message}"
        note: dict[str, Any] = {"level": "warning", "message": {"text": text}}
        if diagnostic.path:
            note["locations"] = [{"physicalLocation": {
                "artifactLocation": {"uri": diagnostic.path.replace("\\", "/")},
                "region": {"startLine": diagnostic.line or 1, "startColumn": diagnostic.column or 1},
            }}]
        notifications.append(note)
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": tool, "informationUri": INFORMATION_URI, "version": _version(),
                                "rules": rules}},
            "invocations": [{"executionSuccessful": True, "toolExecutionNotifications": notifications}],
            "results": results,
        }],
    }


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pglab")
    except PackageNotFoundError:
        return "0"


# -- GitHub workflow annotations ----------------------------------------------------------------


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _annotation(level: str, message: str, title: str, path: str | None, line: int | None,
                column: int | None) -> str:
    properties = []
    if path:
        properties.append(f"file={_escape_property(path)}")
        properties.append(f"line={line or 1}")
        if column:
            properties.append(f"col={column}")
    properties.append(f"title={_escape_property(title)}")
    return f"::{level} {','.join(properties)}::{_escape_data(message)}"


def github_lines(findings: Iterable[Finding], diagnostics: Iterable[Diagnostic] = ()) -> list[str]:
    """One `::error`/`::warning`/`::notice` workflow command per finding and diagnostic."""
    lines = []
    for finding in findings:
        message = finding.message + (f"\nFix: {finding.fix_hint}" if finding.fix_hint else "")
        if finding.rewrite:
            message += f"\nRewrite:\n{finding.rewrite}"
        if not finding.path and finding.evidence:
            message += "\n" + "\n".join(f"{key}: {value}" for key, value in finding.evidence.items())
        lines.append(_annotation(_GITHUB_LEVEL.get(finding.severity, "warning"), message,
                                 f"{finding.code} {finding.id}", finding.path, finding.line, finding.column))
    for diagnostic in diagnostics:
        lines.append(_annotation("notice", diagnostic.message, f"pglab {diagnostic.kind}", diagnostic.path,
                                 diagnostic.line, diagnostic.column))
    return lines


# -- text ---------------------------------------------------------------------------------------


def plural(count: int, word: str, many: str | None = None) -> str:
    """`1 finding`, `2 findings`: the count with its noun in the right number."""
    return f"{count} {word if count == 1 else many or word + 's'}"


def plain(value: Any) -> str:
    """A value as a person reads it, not as Python prints it: `user_id, created_at` for a list,
    `queryid=42, calls=7` for a mapping."""
    if isinstance(value, dict):
        return ", ".join(f"{key}={plain(item)}" for key, item in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(plain(item) for item in value)
    return str(value)


def schema_line(summary: dict[str, Any] | None) -> str | None:
    """"schema: 14 tables, 22 indexes from 3 files (...)": what the rules judged the SQL against."""
    schema = (summary or {}).get("schema")
    description = schema.get("description") if isinstance(schema, dict) else None
    return f"schema: {description}" if description else None
