"""The campaign's scoreboard: per trial and in total, beside the seed article's 15 of 18; in the
terminal, as JSON, and as one HTML file (a trial x invariant heat map, and latency and throughput
over the whole campaign with trial boundaries and fixes marked)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots
from rich.console import Console
from rich.markup import escape
from rich.table import Table

ARTICLE = {"resolved": 15, "trials": 18}  # the seed article's operator (a language model)
RESULT_COLOURS = {"resolved": "green", "immune": "cyan", "failed": "red"}


def summary(trials: list[dict[str, Any]]) -> dict[str, Any]:
    broke = [trial for trial in trials if trial["violated"]]
    counts = {result: sum(trial["result"] == result for trial in trials) for result in RESULT_COLOURS}
    return {"trials": len(trials), **counts, "passed": counts["resolved"] + counts["immune"],
            "violated": len(broke), "true_cause_first": sum(trial["true_cause_rank"] == 1 for trial in broke),
            "article": ARTICLE}


def report(plan: str, operator: str, scale: str, trials: list[dict[str, Any]], timeline: list[dict[str, Any]],
           markers: list[dict[str, Any]]) -> dict[str, Any]:
    return {"plan": plan, "operator": operator, "scale": scale, "trials": trials, "summary": summary(trials),
            "timeline": timeline, "markers": markers}


def render(data: dict[str, Any], console: Console) -> None:
    table = Table(title=f"campaign {data['plan']} ({data['operator']} operator, {data['scale']} scale)")
    for column in ("#", "trial", "ids", "broken", "suspects (rank of the true cause)", "fix", "detect s",
                   "recover s", "result"):
        table.add_column(column, overflow="fold")
    for number, trial in enumerate(data["trials"], start=1):
        rank = trial["true_cause_rank"]
        suspects = ", ".join(trial["diagnosis"][:3]) + (f" ({rank})" if rank else " (-)" if trial["violated"] else "")
        colour = RESULT_COLOURS[trial["result"]]
        table.add_row(str(number), trial["name"], ", ".join(trial["ids"]), ", ".join(trial["violated"]) or "-",
                      escape(suspects), escape("; ".join(trial["fix"]) or "-"), _seconds(trial["detect_s"]),
                      _seconds(trial["recover_s"]), f"[{colour}]{trial['result']}[/]")
    console.print(table)
    total = data["summary"]
    console.print(f"passed {total['passed']} of {total['trials']} ({total['resolved']} resolved, {total['immune']}"
                  f" immune, {total['failed']} failed); true cause named first in {total['true_cause_first']} of"
                  f" {total['violated']} broken trials. The article's operator: {ARTICLE['resolved']} of"
                  f" {ARTICLE['trials']}.")


def write_html(data: dict[str, Any], path: str | Path) -> None:
    figure = make_subplots(rows=3, cols=1, row_heights=[0.34, 0.33, 0.33], vertical_spacing=0.08,
                           subplot_titles=("invariants by trial (first attempt; red: broken)",
                                           "p99 latency (ms, log)", "requests / s"))
    trials = data["trials"]
    names = sorted({name for trial in trials for name in trial["invariants"]})
    figure.add_trace(go.Heatmap(z=[[0 if trial["invariants"][n]["held"] else 1 for trial in trials] for n in names],
                                x=[f"{i}. {t['name']}" for i, t in enumerate(trials, 1)], y=names, showscale=False,
                                colorscale=[[0, "#d5f5e3"], [1, "#c0392b"]], zmin=0, zmax=1), row=1, col=1)
    points = data["timeline"]
    figure.add_trace(go.Scatter(x=[p["t"] for p in points], y=[p["p99_ms"] if p["rps"] else None for p in points],
                                name="p99",
                                mode="lines", line={"color": "#c0392b"}), row=2, col=1)
    figure.add_trace(go.Scatter(x=[p["t"] for p in points], y=[p["rps"] for p in points], name="req/s",
                                mode="lines", line={"color": "#27ae60"}), row=3, col=1)
    figure.update_yaxes(type="log", row=2, col=1)
    figure.update_xaxes(title_text="seconds since the campaign began (dotted: a trial begins; blue: a fix)",
                        row=3, col=1)
    for marker in data["markers"]:
        colour, dash = ("#7f8c8d", "dot") if marker["kind"] == "trial" else ("#2980b9", "solid")
        for row in (2, 3):
            figure.add_vline(x=marker["t"], line={"color": colour, "dash": dash, "width": 1}, row=row, col=1)
        figure.add_annotation(x=marker["t"], xref="x2", y=1, yref="y2 domain", text=html.escape(marker["label"]),
                              showarrow=False, textangle=-90, font={"size": 9, "color": colour}, xanchor="left")
    figure.update_layout(height=1000, showlegend=False, margin={"t": 40})
    chart = pio.to_html(figure, include_plotlyjs=True, full_html=False)
    total = data["summary"]
    head = (f"<h1>pglab campaign {html.escape(data['plan'])}</h1><p>{html.escape(data['operator'])} operator,"
            f" {html.escape(data['scale'])} scale: passed {total['passed']} of {total['trials']}"
            f" ({total['resolved']} resolved, {total['immune']} immune, {total['failed']} failed); true cause first"
            f" in {total['true_cause_first']} of {total['violated']}. The article's operator: 15 of 18.</p>")
    Path(path).write_text(f"<!doctype html><meta charset='utf-8'><title>pglab campaign</title>"
                          f"<body style='font-family: system-ui; margin: 2em'>{head}{chart}</body>", encoding="utf-8")


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"
