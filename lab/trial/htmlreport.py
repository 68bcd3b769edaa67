"""The lab's report as one self-contained HTML file: what a terminal table cannot show.

A verdict says *that* a fix worked; the pictures show *how*: latency percentiles and throughput
second by second for both sides on the same axes, errors, the service's connections by state
(active, idle in transaction, waiting on locks), and when the detectors fired. Beside them the
before/after table, the fix that was applied and the lesson's summary.

The charts are plotly's, with plotly.js inlined once in the file: it opens offline, from an
e-mail or a CI artifact, with zoom and hover. Like `terminal.render`, it reads only the report
dict, and every key beyond `id`, `naive`, `fixed` and `verdict` is optional.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from pglab.lab.trial.terminal import effect_text, load_text, machine_text, repeats_text, table_rows

SIDES = ("naive", "fixed")
# (row title, [(timeline field, trace label, colour)]); one row of charts each, naive | fixed
CHART_ROWS: list[tuple[str, list[tuple[str, str, str]]]] = [
    ("latency (ms, log)", [("p50_ms", "p50", "#2b8cbe"), ("p95_ms", "p95", "#f39c12"), ("p99_ms", "p99", "#c0392b")]),
    ("requests / s", [("offered_rps", "offered", "#95a5a6"), ("rps", "answered", "#27ae60")]),
    ("errors / s", [("errors", "errors", "#c0392b")]),
    ("connections", [("active", "active", "#16a085"), ("idle_in_transaction", "idle in transaction", "#d35400"),
                     ("waiting_on_locks", "waiting on locks", "#8e44ad")]),
]
STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: .2em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
.verdict { font-weight: bold; padding: .1em .5em; border-radius: 4px; color: #fff; }
.cured { background: #27ae60; } .not_reproduced { background: #d4a017; }
.not_cured, .not_equivalent, .unknown { background: #c0392b; }
table { border-collapse: collapse; } td, th { padding: .25em .8em; border-bottom: 1px solid #ddd; text-align: right; }
td:first-child, th:first-child { text-align: left; }
.held { color: #1e8449; } .broken { color: #c0392b; font-weight: bold; }
pre { background: #f6f8fa; padding: .8em; overflow-x: auto; border-radius: 4px; }
.add { color: #1e8449; } .del { color: #c0392b; } .lesson { max-width: 60em; } .dim { color: #777; }
"""


def write_html(report: dict[str, Any], path: str | Path) -> None:
    """Write the report to `path` (one file, no other files needed to open it)."""
    Path(path).write_text(render_html(report), encoding="utf-8")


def render_html(report: dict[str, Any]) -> str:
    entry_id = str(report.get("id", "?"))
    verdict = str(report.get("verdict", "unknown"))
    parts = [
        f"<h1>pglab lab run {_e(entry_id)} <span class='dim'>({_e(report.get('scale', '?'))} scale)</span></h1>",
        f"<p><span class='verdict {_e(verdict)}'>{_e(verdict)}</span> {_e(report.get('reason', ''))}</p>",
    ]
    if report.get("effect"):
        parts.append(f"<p><b>Effect</b>: {_e(effect_text(report['effect']))}"
                     + _e(repeats_text(report)) + "</p>")
    if report.get("lesson"):
        parts.append(f"<h2>What {_e(entry_id)} is</h2><div class='lesson'>{_paragraphs(report['lesson'])}</div>")
    parts += ["<h2>Over time, naive against fixed</h2>", _charts(report),
              "<h2>Before and after (hold phase)</h2>", _table(report),
              _fix(report.get("fix") or {}), _evidence(report), _errors(report),
              f"<p class='dim'>Load: {_e(load_text(report['load']))}</p>" if report.get("load") else "",
              f"<p class='dim'>Measured on: {_e(machine_text(report['machine']))}</p>" if report.get("machine") else "",
              f"<p class='dim'>The whole lesson: <code>pglab explain {_e(entry_id)}</code></p>"]
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>pglab lab: {_e(entry_id)} {_e(verdict)}</title><style>{STYLE}</style></head>\n<body>\n"
            + "\n".join(part for part in parts if part) + "\n</body></html>\n")


def _charts(report: dict[str, Any]) -> str:
    """One figure: a row per measure, naive left and fixed right on shared axes."""
    titles = [row for row, _ in CHART_ROWS] + ["detections"]
    figure = make_subplots(rows=len(titles), cols=2, shared_xaxes=True, shared_yaxes=True, vertical_spacing=0.045,
                           horizontal_spacing=0.03, column_titles=list(SIDES), row_titles=titles)
    for column, side_name in enumerate(SIDES, start=1):
        side = report.get(side_name) or {}
        timeline = side.get("timeline") or []
        times = [point.get("t") for point in timeline]
        for row, (_, traces) in enumerate(CHART_ROWS, start=1):
            for field, label, colour in traces:
                values = [point.get(field) for point in timeline]
                if row == 1:  # a log axis has no zero: a second without requests is a gap
                    values = [value if value else None for value in values]
                if all(value is None for value in values):
                    continue
                figure.add_trace(go.Scatter(x=times, y=values, name=label, legendgroup=label, mode="lines",
                                            line={"color": colour, "width": 1.6}, showlegend=column == 1),
                                 row=row, col=column)
        events = side.get("detector_timeline") or []
        if events:
            figure.add_trace(go.Scatter(x=[event.get("t") for event in events], y=[event.get("id") for event in events],
                                        mode="markers", marker={"symbol": "line-ns-open", "size": 12, "color": "#444"},
                                        name="detector fired", legendgroup="detections", showlegend=column == 1),
                             row=len(titles), col=column)
    figure.update_yaxes(type="log", dtick=1, row=1)  # a label per power of ten
    figure.update_xaxes(title_text="seconds from the start of the load", row=len(titles))
    figure.update_layout(height=230 * len(titles), template="plotly_white", margin={"l": 60, "r": 90, "t": 40, "b": 50},
                         legend={"orientation": "h", "y": 1.04, "x": 0}, hovermode="x unified")
    return pio.to_html(figure, full_html=False, include_plotlyjs=True, config={"displaylogo": False})


def _table(report: dict[str, Any]) -> str:
    rows = ["<tr><th></th><th>naive</th><th>fixed</th></tr>"]
    for label, naive, fixed in table_rows(report):
        rows.append(f"<tr><td>{_e(label)}</td>{_cell(naive)}{_cell(fixed)}</tr>")
    return "<table>" + "".join(rows) + "</table>"


def _cell(text: str) -> str:
    state = text.split(" ", 1)[0]
    css = f" class='{state}'" if state in ("held", "broken") else ""
    return f"<td{css}>{_e(text)}</td>"


def _fix(fix: dict[str, Any]) -> str:
    ddl, diff = fix.get("ddl") or [], fix.get("code_diff") or ""
    if not ddl and not diff:
        return ""
    parts = ["<h2>The fix that was applied</h2>"]
    if ddl:
        parts.append("<pre>" + _e(";\n".join(statement.rstrip(";") for statement in ddl) + ";") + "</pre>")
    if diff:
        lines = []
        for line in diff.splitlines():
            css = "add" if line.startswith("+") and not line.startswith("+++") else (
                "del" if line.startswith("-") and not line.startswith("---") else "")
            lines.append(f"<span class='{css}'>{_e(line)}</span>" if css else _e(line))
        parts.append("<pre>" + "\n".join(lines) + "</pre>")
    return "".join(parts)


def _evidence(report: dict[str, Any]) -> str:
    entry_id = report.get("id")
    items = []
    for side_name in SIDES:
        for item in (report.get(side_name) or {}).get("detector_evidence") or []:
            if item.get("id") == entry_id:
                subject = f" <span class='dim'>({_e(item['subject'])})</span>" if item.get("subject") else ""
                items.append(f"<li>{side_name}: {_e(item.get('message', ''))}{subject}</li>")
    parts = []
    if items:
        parts.append(f"<h2>What the detector saw</h2><ul>{''.join(items[:10])}</ul>")
    others = report.get("also_present") or []
    if others:
        parts.append("<h2>Also present</h2><p class='dim'>Other anti-patterns the detectors saw; not on trial here."
                     "</p><ul>" + "".join(f"<li><b>{_e(item.get('id', '?'))}</b> ({_e(item.get('side', '?'))} run): "
                                           f"{_e(item.get('message', ''))}</li>" for item in others) + "</ul>")
    return "".join(parts)


def _errors(report: dict[str, Any]) -> str:
    items = []
    for side_name in SIDES:
        errors = (report.get(side_name) or {}).get("errors") or {}
        for message, count in sorted(errors.items(), key=lambda item: -item[1])[:5]:
            items.append(f"<li>{side_name}: {count:,} x {_e(message)}</li>")
    return f"<h2>Errors</h2><ul>{''.join(items)}</ul>" if items else ""


def _paragraphs(text: str) -> str:
    return "".join(f"<p>{_e(paragraph.strip())}</p>" for paragraph in text.strip().split("\n\n") if paragraph.strip())


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)
