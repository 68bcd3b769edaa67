"""`pglab lab run ID`: argument parsing and output. The run itself is `pglab.lab.trial.report.run_lab`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from pglab.lab.cli import campaigncommand as campaign
from pglab.lab.cli import classroomcommand as classroom
from pglab.lab.cli import laboptions
from pglab.lab.core.errors import UserError
from pglab.lab.trial import report as lab_report
from pglab.lab.trial.terminal import render


def progress_callback(progress: Progress, plain: bool) -> Callable[[str, float, float], None]:
    """Progress as a bar on a terminal; as plain lines (one per change of step) otherwise."""
    task: list[TaskID] = []
    last: list[str] = [""]

    def update(what: str, done: float, total: float) -> None:
        if plain:
            step = what.split(":")[0] if what.startswith("seeding") else what
            if step != last[0]:
                last[0] = step
                print(f"pglab lab: {step}", file=sys.stderr, flush=True)
            return
        if not task:
            task.append(progress.add_task(what, total=total))
        progress.update(task[0], description=what, completed=done, total=total)

    return update


def cmd_run(args: argparse.Namespace) -> int:
    began = time.perf_counter()
    entry_id = lab_report.validated_request(args.id, args.duration, args.workers, args.repeat)  # before anything starts
    lab_report.check_output_path(args.json, "--json")
    lab_report.check_output_path(args.html, "--html")
    overrides = {}
    for text in args.override:
        entry_id, _, path = text.partition("=")
        if not Path(path).is_file():
            raise UserError(f"--override {text}: expected ID=FILE with an existing FILE")
        overrides[entry_id] = Path(path).resolve()
    console = Console()
    stderr = Console(stderr=True)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=stderr,
                        transient=True)
    scale = laboptions.scale_for(args.scale, entry_id)
    with progress:
        report = lab_report.run_lab(entry_id, scale, args.duration, args.workers, args.dsn, args.allow_write,
                                    progress_callback(progress, not stderr.is_terminal), args.repeat, args.keep,
                                    overrides)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str) + "\n")
    if args.html:
        from pglab.lab.trial.htmlreport import write_html  # plotly: 0.15 s of start-up, only for --html

        write_html(report, Path(args.html))
    render(report, console)
    console.print(f"[dim]lab run took {time.perf_counter() - began:.0f} s[/]")
    return 0


def add_parser(commands: Any) -> None:
    lab = commands.add_parser("lab", help="show an anti-pattern hurting a service under load, then cured")
    actions = lab.add_subparsers(dest="lab_command", metavar="ACTION", required=True)
    run = actions.add_parser(
        "run", help="naive and fixed runs (repeated ABAB), verdict",
        description="Seed the chat service's data, run the entry's naive code path under its Locust load, "
                    "apply the reference fix, run again, and judge. Most profiles' load is measured on this "
                    "machine before the first repeat: half of what the reference fix completes flat out "
                    "(a few seconds); the report states it.")
    run.add_argument("id", metavar="ID", help="an anti-pattern id (or code) with a load profile")
    laboptions.add_scale(run)
    run.add_argument("--duration", type=float, default=30.0, help="seconds of load per side (default 30)")
    run.add_argument("--repeat", type=int, default=1, help="naive/fixed pairs to run, alternately (default 1)")
    run.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    run.add_argument("--html", metavar="FILE", help="also write the report as one HTML file")
    run.add_argument("--workers", type=int, default=0, help="Locust worker processes (default 0: one process)")
    laboptions.add_server(run)
    run.add_argument("--keep", action="store_true", help="keep the lab schema and extensions the run created")
    run.add_argument("--override", action="append", default=[], metavar="ID=FILE", help=argparse.SUPPRESS)
    run.set_defaults(handler=cmd_run)
    classroom.add_parsers(actions)
    campaign.add_parser(actions)
