"""The lab's report in the terminal: the before/after table, then what happened, in words.

A table and a verdict tell a newcomer that something was cured, not what: this module adds what
the anti-pattern did (its predicted invariant, measured on both sides), what its detector saw,
the fix that was applied (its DDL, or the diff between the naive and the fixed code path), the
effect as a ratio, and where to read the lesson. Detections of other anti-patterns are shown
apart, as "also present", so they are not mistaken for this one's.

It reads only the report dict (`pglab lab run --json` writes the same one), and every key beyond
`id`, `scale`, `naive`, `fixed` and `verdict` is optional: an older or partial report still
renders.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.syntax import Syntax
from rich.table import Table

VERDICT_COLOURS = {"cured": "green", "not_reproduced": "yellow", "not_cured": "red", "not_equivalent": "red"}
Side = dict[str, Any]


def render(report: dict[str, Any], console: Console) -> None:
    """The table, the verdict and its reason, then the explanation."""
    console.print(_table(report))
    colour = VERDICT_COLOURS.get(report.get("verdict", ""), "white")
    console.print(f"verdict: [bold {colour}]{escape(str(report.get('verdict', 'unknown')))}[/]"
                  + (f" ({escape(report['reason'])})" if report.get("reason") else ""))
    explain(report, console)


def explain(report: dict[str, Any], console: Console) -> None:
    entry_id = str(report.get("id", "?"))
    naive, fixed = report.get("naive", {}), report.get("fixed", {})
    if report.get("lesson"):
        console.print(f"\n[bold]{escape(entry_id)}[/]: {escape(_first_paragraph(report['lesson']))}")
    _what_it_did(report, console)
    _naive_answer_wrong(report.get("naive_answer_wrong"), console)
    _what_the_detector_saw(entry_id, naive, fixed, console)
    _the_fix(report.get("fix") or {}, console)
    effect = report.get("effect")
    if effect:
        console.print(f"\n[bold]Effect[/]: {escape(effect_text(effect))}" + escape(repeats_text(report)))
    _also_present(report, console)
    _errors_and_notes(naive, fixed, console)
    if report.get("load"):
        console.print(f"\nLoad: {escape(load_text(report['load']))}")
    if report.get("machine"):
        console.print(f"\nMeasured on: {escape(machine_text(report['machine']))}")
    console.print(f"\nThe lesson in full: [bold]pglab explain {escape(entry_id)}[/]")


def machine_text(machine: dict[str, Any]) -> str:
    """The machine a report was measured on, in one line (`lab/trial/machine.py` says why)."""
    return (f"{machine.get('cpu', '?')}, {machine.get('cores', '?')} cores; fixed work took"
            f" {_number(machine.get('postgres_work_ms'), '{:,.0f}')} ms in Postgres and"
            f" {_number(machine.get('python_work_ms'), '{:,.0f}')} ms in Python")


def table_rows(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The before/after table as plain text rows (label, naive, fixed), shared with the HTML
    report; an invariant's cell starts with "held" or "broken"."""
    naive, fixed = report.get("naive", {}), report.get("fixed", {})
    rows: list[tuple[str, Callable[[Side], str]]] = [
        ("requests (hold)", lambda s: _number(s.get("requests"), "{:,.0f}")),
        ("offered / achieved", lambda s: f"{_number(s.get('offered_rps'), '{:,.1f}')} / "
                                         f"{_number(s.get('achieved_rps'), '{:,.1f}')} req/s"),
        ("throughput", lambda s: _number(s.get("rps"), "{:,.1f} req/s")),
        ("p50 / p95 ms", lambda s: " / ".join(_number(s.get(k), "{:,.0f}") for k in ("p50_ms", "p95_ms")) + " ms"),
        ("p99 ms (predicted endpoints)", lambda s: _number(s.get("p99_ms"), "{:,.0f}") + _spread(s, "p99_ms")),
        ("errors", _errors),
        ("lost updates (tokens)", lambda s: _number(s.get("lost_updates"), "{:,.0f}")),
        ("peak backends", lambda s: _number(s.get("peak_backends"), "{:,.0f}")),
    ]
    table = [(name, cell(naive), cell(fixed)) for name, cell in rows
             if any(key_present(name, side) for side in (naive, fixed))]
    predicted = set(report.get("predicted") or [])
    for name, check in (naive.get("invariants") or {}).items():
        label = f"{name} (predicted)" if name in predicted else name
        table.append((label, _check(check), _check((fixed.get("invariants") or {}).get(name))))
    table.append(("detections", ", ".join(naive.get("detections") or []) or "none",
                  ", ".join(fixed.get("detections") or []) or "none"))
    if "fixes_in_effect" in naive or "fixes_in_effect" in fixed:
        table.append(("fixes in effect", _fixes(naive), _fixes(fixed)))
    return table


ROW_KEYS = {"offered / achieved": "offered_rps", "peak backends": "peak_backends"}  # rows newer reports add


def key_present(row: str, side: Side) -> bool:
    return row not in ROW_KEYS or ROW_KEYS[row] in side


def _table(report: dict[str, Any]) -> Table:
    table = Table(title=f"pglab lab run {report.get('id', '?')} ({report.get('scale', '?')})")
    for column in ("", "naive", "fixed"):
        table.add_column(column, justify="right" if column else "left")
    for label, naive, fixed in table_rows(report):
        table.add_row(escape(label), _coloured(naive), _coloured(fixed))
    return table


def _coloured(cell: str) -> str:
    for state, colour in (("held", "green"), ("broken", "red")):
        if cell.startswith(state + " "):
            return f"[{colour}]{state}[/]{escape(cell[len(state):])}"
    return escape(cell)


def _what_it_did(report: dict[str, Any], console: Console) -> None:
    predicted = report.get("predicted") or []
    naive, fixed = report.get("naive", {}), report.get("fixed", {})
    lines = []
    for name in predicted:
        before, after = (naive.get("invariants") or {}).get(name), (fixed.get("invariants") or {}).get(name)
        if not before:
            lines.append(f"  {name}: not measured")
            continue
        state = "broke" if not before.get("held", True) else "held"
        line = f"  {name}: the naive run {state} it, {_value(before)} against a limit of {_limit(before)}"
        if after:
            line += f"; fixed: {_value(after)} ({'held' if after.get('held') else 'still broken'})"
        lines.append(line)
    if lines:
        console.print(f"\n[bold]What {escape(str(report.get('id', '?')))} did[/] (the harm it predicts):")
        for line in lines:
            console.print(escape(line))


def _naive_answer_wrong(wrong: dict[str, Any] | None, console: Console) -> None:
    """The naive side's answers that an independent oracle refuted and the fixed side's confirmed."""
    if not wrong:
        return
    console.print(f"\n[bold]The naive answer was wrong[/] ({escape(str(wrong.get('why', '')))}):")
    for probe in wrong.get("probes") or []:
        console.print(escape(f"  {probe}"))


def _what_the_detector_saw(entry_id: str, naive: Side, fixed: Side, console: Console) -> None:
    evidence = [item for item in naive.get("detector_evidence") or [] if item.get("id") == entry_id]
    seen_naive = entry_id in (naive.get("detections") or [])
    seen_fixed = entry_id in (fixed.get("detections") or [])
    console.print("\n[bold]What the detector saw[/]:")
    if evidence:
        for item in evidence[:3]:
            subject = f" [{item['subject']}]" if item.get("subject") else ""
            console.print(escape(f"  naive: {item.get('message', '')}{subject}"))
    else:
        console.print("  naive: " + ("detected (no evidence recorded)" if seen_naive else "nothing: the detector "
                                     "stayed quiet"))
    console.print("  fixed: " + ("[red]still detected[/]" if seen_fixed else "quiet"))


def _the_fix(fix: dict[str, Any], console: Console) -> None:
    ddl, diff = fix.get("ddl") or [], fix.get("code_diff") or ""
    if not ddl and not diff:
        return
    console.print("\n[bold]The fix that was applied[/]:")
    if ddl:
        console.print(Syntax(";\n".join(statement.rstrip(";") for statement in ddl) + ";", "sql",
                             theme="ansi_dark", background_color="default", word_wrap=True))
    if diff:
        console.print(Syntax(diff.rstrip("\n"), "diff", theme="ansi_dark", background_color="default", word_wrap=True))


def _also_present(report: dict[str, Any], console: Console) -> None:
    others = report.get("also_present") or []
    if not others:
        return
    console.print("\n[bold]Also present[/] (other anti-patterns the detectors saw; not on trial here):")
    for item in others:
        console.print(escape(f"  {item.get('id', '?')} ({item.get('side', '?')} run): {item.get('message', '')}"))


def _errors_and_notes(naive: Side, fixed: Side, console: Console) -> None:
    for label, side in (("naive", naive), ("fixed", fixed)):
        errors = side.get("errors") or {}
        for message, count in sorted(errors.items(), key=lambda item: -item[1])[:3]:
            console.print(f"[dim]{label} error x{count}: {escape(message)}[/]")
        for note in (side.get("notes") or [])[:3]:
            console.print(f"[dim]{label} note: {escape(note)}[/]")


def effect_text(effect: dict[str, Any]) -> str:
    """`p99_ms 1,400 -> 59 (23.7x better)`: how many times better, in the direction the metric counts;
    `-> 0` alone where a ceiling's value went to zero, `(from 0)` where a floor's rose from it."""
    fixed, ratio = effect.get("fixed"), effect.get("ratio")
    text = f"{effect.get('metric', '?')} {amount(effect.get('naive'))} -> {amount(fixed)}"
    if ratio is None:
        return text + (" (from 0)" if effect.get("better") == "higher" else "")
    if ratio >= 1:
        return text + f" ({ratio:,.1f}x better)"
    return text + (f" ({1 / ratio:,.1f}x worse)" if ratio else " (worse)")


def repeats_text(report: dict[str, Any]) -> str:
    repeats = report.get("repeats")
    if not isinstance(repeats, int) or repeats < 1:
        return ""
    return f", median of {repeats} repeats" if repeats > 1 else ", one run per side"


def _spread(side: Side, figure: str) -> str:
    """ (min-max) of a figure over the repeats, when there were several and they differ."""
    low_high = (side.get("spread") or {}).get(figure)
    if not low_high or len(low_high) != 2 or low_high[0] == low_high[1]:
        return ""
    return f" ({_number(low_high[0], '{:,.0f}')}-{_number(low_high[1], '{:,.0f}')})"


def _first_paragraph(text: str) -> str:
    return re.split(r"\n\s*\n", text.strip(), maxsplit=1)[0].replace("\n", " ")


def _number(value: Any, pattern: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-"
    return pattern.format(value)


def _errors(side: Side) -> str:
    failures, requests = side.get("failures"), side.get("requests")
    if _number(failures, "") == "-" or _number(requests, "") == "-":
        return "-"
    return f"{failures:,.0f} ({failures / requests:.1%})" if requests else "0"


def amount(value: Any) -> str:
    """A measured value as people read it: 16,100 and 250, but 2.04 and 0.01."""
    if _number(value, "") == "-":
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 or float(value).is_integer() else f"{value:,.3g}"


def _value(check: dict[str, Any]) -> str:
    return amount(check.get("value"))


def _limit(check: dict[str, Any]) -> str:
    return amount(check.get("limit"))


def _check(check: dict[str, Any] | None) -> str:
    if not check:
        return "-"
    return f"{'held' if check.get('held') else 'broken'} {_value(check)} (limit {_limit(check)})"


def _fixes(side: Side) -> str:
    return ", ".join(side.get("fixes_in_effect") or []) or "none"


def load_text(load: dict[str, Any]) -> str:
    """A measured load in words: the factor, what it multiplied and what both sides were offered."""
    factor = load.get("overload", load.get("share", 0))
    whose = "the naive service" if "overload" in load else "the reference fix"
    return (f"{factor:g} x the {_number(load.get('capacity_rps'), '{:,.1f}')} req/s {whose} completed flat out"
            f" on this machine = {_number(load.get('offered_rps'), '{:,.1f}')} req/s offered to both sides")
