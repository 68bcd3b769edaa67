"""Benchmark: the lab's anti-patterns at `medium` scale, naive against fixed, repeated.

    python tests/bench/lab_bench.py [--scale medium] [--duration 30] [--repeat 3] [--workers 0]
                                    [--markdown FILE] [--reports DIR] [ID ...]

First it measures the load generator's own ceiling (Locust hammering the service's trivial
/health endpoint, one process, then a master and 2 workers), so the rates below can be read
against it. Then, per anti-pattern, it runs the lab (`run_lab`, naive and fixed alternately,
`--repeat` times) and prints the metric the entry predicts, naive -> fixed, as medians with their
spread over the repeats (min-max), the improvement (how many times better the fixed median is, in
the direction the metric counts: naive / fixed for p99, fixed / naive for goodput; "-> 0" when a
p99-like median went to 0, "from 0" when a goodput-like one rose from it), whether it reaches the
10x target, offered and achieved rates, and the verdict with its reason. `--markdown FILE` also
writes the table as markdown for the README.

Every figure is measured; nothing here is tuned to reach the target. The lab's runs share the
machine's cores with whatever else runs on it: say what else ran when you quote the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from pglab.lab.core.errors import UserError
from pglab.lab.postgres.launcher import EmbeddedPostgres
from pglab.lab.trial.baseline import lab_ids
from pglab.lab.trial.loadrun import profile_path, run_load
from pglab.lab.trial.report import check_output_path, run_lab
from pglab.lab.trial.seed import SCALES, lab_dsn, seed
from pglab.lab.trial.server import LAB_SERVER_SETTINGS
from pglab.lab.trial.service.process import running_service
from pglab.lab.trial.terminal import machine_text

TARGET = 10.0  # the target: the predicted metric improves at least 10x, or goes to zero
COLUMNS = ("id", "predicted metric", "naive (min-max)", "fixed (min-max)", "improvement", "target",
           "offered / achieved naive", "offered / achieved fixed", "verdict")


def ceiling(seconds: float, workers: int) -> tuple[float, float]:
    """Requests/s one Locust set-up sustains against /health, and its p99 in ms."""
    with EmbeddedPostgres(settings=LAB_SERVER_SETTINGS) as server:
        seed(server.dsn(), SCALES["small"])
        with running_service(lab_dsn(server.dsn()), frozenset()) as url:
            result = run_load(profile_path("ceiling"), url, seconds, sample={}, workers=workers)
    hold = result.hold()
    return hold.rps, hold.p(0.99)


def metric_values(report: dict[str, Any], side: str) -> list[float]:
    """The predicted metric's value in each repeat of one side."""
    metric = report["effect"]["metric"]
    return [float(run["invariants"][metric]["value"]) for run in report.get("runs", []) if run["side"] == side]


def row(report: dict[str, Any]) -> list[str]:
    effect = report["effect"]
    ratio = effect["ratio"]
    if ratio is None and effect.get("better") == "higher":
        improvement, reached = "from 0", effect["fixed"] > 0
    elif ratio is None:
        improvement, reached = "-> 0", effect["naive"] > 0
    else:
        improvement, reached = f"{ratio:,.1f}x", ratio >= TARGET
    sides = [f"{_figure(effect[side])} ({_spread(metric_values(report, side))})" for side in ("naive", "fixed")]
    rates = [f"{report[side]['offered_rps']:,.1f} / {report[side]['achieved_rps']:,.1f}" for side in ("naive", "fixed")]
    wrong = report.get("naive_answer_wrong")
    answers = f"; naive answer wrong in {len(wrong['probes'])} probe(s), fixed right" if wrong else ""
    return [report["id"], effect["metric"], *sides, improvement, "met" if reached else "MISSED", *rates,
            report["verdict"] + answers]


def markdown(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ids", nargs="*", help="anti-pattern ids (default: every one the lab knows)")
    parser.add_argument("--scale", default="medium", choices=tuple(SCALES))
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load per side")
    parser.add_argument("--repeat", type=int, default=3, help="naive/fixed pairs per id (default 3)")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--markdown", metavar="FILE", help="also write the table as markdown")
    parser.add_argument("--reports", metavar="DIR", help="also write each id's report as DIR/ID.json")
    parser.add_argument("--no-ceiling", action="store_true", help="skip the load generator's ceiling")
    args = parser.parse_args()
    console = Console(width=200)
    try:
        check_output_path(args.markdown, "--markdown")  # before the long runs, not after
        if args.reports and not Path(args.reports).is_dir():
            raise UserError(f"--reports {args.reports}: not a directory")
        for entry_id in args.ids:
            if entry_id not in lab_ids():
                raise UserError(f"the lab has no load profile for {entry_id}; it runs {', '.join(lab_ids())}")
    except UserError as error:
        sys.exit(f"lab_bench: {error}")

    if not args.no_ceiling:
        for workers in (0, 2):
            rps, p99 = ceiling(15, workers)
            setup = "one Locust process" if workers == 0 else f"a Locust master and {workers} workers"
            console.print(f"load generator ceiling: {rps:,.0f} req/s from {setup} against /health (p99 {p99:.0f} ms)")

    rows: list[list[str]] = []
    for entry_id in args.ids or lab_ids():
        began = time.perf_counter()
        report = run_lab(entry_id, args.scale, args.duration, args.workers, repeats=args.repeat)
        rows.append(row(report))
        if args.reports:
            Path(args.reports, f"{entry_id}.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
        console.print(f"{entry_id}: {report['verdict']} ({report.get('reason', '')}); "
                      f"{time.perf_counter() - began:.0f} s; measured on {machine_text(report['machine'])}")
    table = Table(title=f"pglab lab, {args.scale} scale, {args.duration:g} s of load per side, "
                        f"{args.repeat} repeats (medians)")
    for column in COLUMNS:
        table.add_column(column)
    for cells in rows:
        table.add_row(*cells)
    console.print(table)
    if args.markdown:
        Path(args.markdown).write_text(markdown(rows), encoding="utf-8")
        console.print(f"markdown table written to {args.markdown}")


def _figure(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 10 else f"{value:,.3g}"


def _spread(values: list[float]) -> str:
    return f"{_figure(min(values))}-{_figure(max(values))}" if values else "-"


if __name__ == "__main__":
    main()
