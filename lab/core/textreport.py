"""The text format of `report.render`: findings grouped by file, for a person at a terminal or
reading a CI log.

Most runs write to a pipe or a file, where rich would show no styles: there the text is laid out
directly (`_Plain`), byte for byte what rich would print, without rich's per-line rendering or
even its import; a terminal with colours gets rich itself.
"""

from __future__ import annotations

import builtins
import os
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from pglab.lab.core.findings import Finding
from pglab.lab.core.report import Diagnostic, plain, plural, schema_line

if TYPE_CHECKING:  # rich is imported only when it has to decide the output
    from rich.console import Console

_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def _position(finding: Finding | Diagnostic) -> str:
    if finding.line is None:
        return ""
    return f"{finding.line}:{finding.column or 1}"


def _escaped(text: str) -> str:
    """What rich.markup's `escape` returns, without importing it: that import (rich.markup pulls in
    rich's emoji table and more) cost ~9 ms of every run whose findings show a `[`, an array
    subscript in a source line, say. Each tag gets a backslash, and the backslashes before it are
    doubled; a lone trailing backslash is doubled too. Most texts have neither `[` nor `\\`."""
    if "[" not in text and "\\" not in text:
        return text
    text = _Plain._TAG.sub(_escape_tag, text)  # the tags rich.markup reads, with the backslashes before them
    return text + "\\" if text.endswith("\\") and not text.endswith("\\\\") else text


def _escape_tag(match: re.Match[str]) -> str:
    backslashes = match.group(1)
    return f"{backslashes * 2}\\{match.group(0)[len(backslashes):]}"


def render_text(findings: Sequence[Finding], diagnostics: Sequence[Diagnostic], summary: dict[str, Any],
                out: TextIO, clean_message: str | None = None) -> None:
    """Findings grouped by file (runtime findings under one "runtime" group), each with its source
    line, its one-line fix hint and, where there is one, the rewritten SQL."""
    if not _surely_plain(out):
        from rich.console import Console

        rich_console = Console(file=out, highlight=False, soft_wrap=True, emoji=False)
        # no styles to show (a file, a pipe, NO_COLOR): skip rich's per-line rendering
        if rich_console.color_system is not None:
            _render_lines(rich_console, findings, diagnostics, summary, clean_message)
            return
    console = _Plain()
    _render_lines(console, findings, diagnostics, summary, clean_message)
    out.write(console.text())


def _surely_plain(out: TextIO) -> bool:
    """Whether rich would surely show no styles on `out`, told without importing rich.console
    (about 40 ms, a twentieth of a whole `pglab check` run): a file or a pipe, with neither
    FORCE_COLOR nor TTY_COMPATIBLE set (they make rich treat it as a terminal), outside IPython
    (rich colours a notebook). Any other case is left to rich to decide."""
    if "FORCE_COLOR" in os.environ or "TTY_COMPATIBLE" in os.environ or hasattr(builtins, "get_ipython"):
        return False
    try:
        return not out.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream: rich's own answer
        return False


def _render_lines(console: Console | _Plain, findings: Sequence[Finding], diagnostics: Sequence[Diagnostic],
                  summary: dict[str, Any], clean_message: str | None) -> None:
    if not findings and not diagnostics:  # one line: the producer's clean message says what was read
        console.print(_escaped(clean_message or "No findings."))
        return
    described = schema_line(summary)
    groups: dict[str, list[Finding]] = defaultdict(list)
    for finding in findings:
        groups[finding.path or "runtime"].append(finding)
    for group, members in groups.items():
        console.print(f"[bold underline]{_escaped(group)}[/]")
        for finding in sorted(members, key=lambda item: (item.line or 0, item.column or 0, item.code)):
            _print_finding(console, finding)
        console.print()
    if diagnostics:
        console.print("[bold]diagnostics[/]")
        for diagnostic in diagnostics:
            where = ":".join(str(part) for part in (diagnostic.path, _position(diagnostic)) if part)
            console.print(f"  [dim]{_escaped(where)}[/] [magenta]{_escaped(diagnostic.kind)}[/] "
                          f"{_escaped(diagnostic.message)}")
        console.print()
    if described:
        console.print(_escaped(described))
    if covered := window_line(summary):
        console.print(_escaped(covered))
    console.print(_escaped(_summary_line(summary)))


class _Plain:
    """What rich prints when it shows no styles (output to a file or a pipe, NO_COLOR), without
    rich's rendering: the markup tags dropped by rich's own rule, text written as is. Rendering
    thousands of findings through rich cost more than checking the files that produced them.

    Tags are dropped line by line (a tag never spans two `print`s); control codes and tabs are
    handled once over the whole text, which gives the same result since neither involves a line
    end (tab stops restart after each one)."""

    _TAG = re.compile(r"(\\*)\[([a-z#/@][^[]*?)]")  # rich.markup's RE_TAGS
    # the same matches when the text has no backslash, but starting with a literal `[` lets the
    # regex engine skip ahead to each one instead of trying every position
    _BARE_TAG = re.compile(r"\[[a-z#/@][^[]*?]")
    # rich.control.STRIP_CONTROL_CODES (bell, backspace, vertical tab, form feed, carriage
    # return), written out so plain output imports no rich at all; a test holds them equal
    _CONTROL = re.compile("[\a\b\v\f\r]")

    def __init__(self) -> None:
        self.lines: list[str] = []

    def print(self, markup: str = "") -> None:
        # without a backslash no tag is escaped, and every tag is dropped whole
        self.lines.append(self._BARE_TAG.sub("", markup) if "\\" not in markup
                          else self._TAG.sub(self._strip, markup))

    def text(self) -> str:
        """The lines as rich writes them: control codes removed (rich's `strip_control_codes`,
        whose `str.translate` costs ~30x this scan), tabs expanded."""
        if not self.lines:
            return ""
        text = self._CONTROL.sub("", "\n".join(self.lines) + "\n")
        return text.expandtabs(8) if "\t" in text else text

    @staticmethod
    def _strip(match: re.Match[str]) -> str:
        backslashes, escaped = divmod(len(match.group(1)), 2)
        return "\\" * backslashes + (match.group(0)[len(match.group(1)) :] if escaped else "")


def _print_finding(console: Console | _Plain, finding: Finding) -> None:
    style = _STYLE.get(finding.severity, "")
    if isinstance(console, _Plain) and style and not _has_markup_characters(finding):
        # tags around text with no `[` and no backslash: dropping them leaves the bare text
        console.lines += _finding_lines(finding, style, _bare, str)
        return
    for line in _finding_lines(finding, style, _tagged, _escaped):
        console.print(line)


def _finding_lines(finding: Finding, style: str, tag: Callable[[str, str], str],
                   escaped: Callable[[str], str]) -> list[str]:
    """One finding's lines, as rich markup (`_tagged`, `_escaped`) or, where that is the same once
    the tags are dropped, as plain text (`_bare`, `str`): one layout for both."""
    position = _position(finding)
    lead = f"  {tag('dim', f'{position:>8}')} " if position else "  "
    lines = [f"{lead}{tag(style, escaped(finding.code))} {tag('bold', escaped(finding.id))} "
             f"{tag(style, '(' + escaped(finding.severity) + ')')} {escaped(finding.message)}"]
    if finding.source:
        lines.append(f"           {tag('dim', '│')} {escaped(finding.source.rstrip())}")
    for key, value in finding.evidence.items():
        lines.append(f"           {tag('dim', escaped(str(key)) + ':')} {escaped(plain(value))}")
    if finding.fix_hint:
        lines.append(f"           {tag('green', 'fix:')} {escaped(finding.fix_hint)}")
    if finding.rewrite:
        lines.append(f"           {tag('green', 'rewrite:')}")
        lines += [f"             {tag('cyan', escaped(line))}" for line in finding.rewrite.splitlines()]
    return lines


def _tagged(style: str, text: str) -> str:
    return f"[{style}]{text}[/]"


def _bare(style: str, text: str) -> str:
    return text


def _has_markup_characters(finding: Finding) -> bool:
    """Whether some text of the finding has a `[` or a backslash, which rich's escaping and tag
    rules may change: then it goes the markup way."""
    texts = [finding.code, finding.id, finding.severity, finding.message, finding.source or "",
             finding.fix_hint or "", finding.rewrite or ""]
    texts += [f"{key}{plain(value)}" for key, value in finding.evidence.items()]
    joined = "".join(texts)
    return "[" in joined or "\\" in joined


def _summary_line(summary: dict[str, Any]) -> str:
    counts = ", ".join(f"{count} {severity}" for severity, count in summary["by_severity"].items() if count)
    where = f" in {plural(summary['files'], 'file')}" if "files" in summary else ""
    text = f"Found {plural(summary['findings'], 'finding')}{where}" + (f" ({counts})" if counts else "")
    if summary.get("diagnostics"):
        text += f"; {plural(summary['diagnostics'], 'diagnostic')}"
    return text + "."


def window_line(summary: dict[str, Any] | None) -> str | None:
    """"window: since pglab's previous run, 63 s": what the runtime counters judged cover, stated
    with every result, since a finding over totals since the last reset may be long fixed."""
    window = (summary or {}).get("window")
    text = window.get("text") if isinstance(window, dict) else None
    return f"window: {text}" if text else None
