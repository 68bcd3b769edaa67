"""`pglab lab exercise|observe|hint|grade`: argument parsing and output for the classroom.
The work is in `pglab.lab.classroom`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pglab.lab.cli import laboptions
from pglab.lab.core.errors import UserError


def cmd_exercise(args: argparse.Namespace) -> int:
    from pglab.lab.classroom import workspace

    if args.all:
        created = workspace.create_pack(Path(args.dir or "pglab-course"), args.mystery)
        print(f"wrote {len(created)} exercises and TEACHER.md to {args.dir or 'pglab-course'}")
        return 0
    if not args.id:
        raise UserError("name an anti-pattern (pglab lab exercise ID [DIR]) or pass --all DIR")
    made = workspace.create(args.id, Path(args.dir or f"exercise-{args.id}"), args.mystery)
    print(f"wrote the exercise to {made.root}: start with {made.root / 'README.md'}")
    return 0


def cmd_hint(args: argparse.Namespace) -> int:
    from pglab.lab.classroom import hints, workspace

    space = workspace.load(Path(args.dir))
    hint = hints.next_hint(space.entry_id, space.mystery, space.hints_used)
    total = hints.hint_count(space.entry_id, space.mystery)
    if hint is None:
        print(f"no more hints: you have seen all {total}")
        return 0
    space.record_hint()
    print(f"hint {space.hints_used + 1} of {total}: {hint}")
    return 0


def cmd_observe(args: argparse.Namespace) -> int:
    from pglab.lab.classroom import observe, workspace

    space = workspace.load(Path(args.dir))
    scale = laboptions.scale_for(args.scale, space.entry_id)
    stderr = Console(stderr=True)
    with _progress(stderr) as update:
        side = observe.observe(space, scale, args.duration, update, dsn=args.dsn, allow_write=args.allow_write,
                               on_server=lambda dsn: stderr.print(f"the data is at {escape(dsn)} while the load runs"))
    console = Console()
    table = Table(title=f"your code under the exercise's load ({scale}, {args.duration:g} s)")
    table.add_column("what")
    table.add_column("measured")
    for label, value in observe.symptoms(side):
        table.add_row(label, escape(value))
    console.print(table)
    for evidence in side.detector_evidence:
        console.print(f"detector: {escape(evidence['message'])}")
    if not side.detector_evidence:
        console.print("the detectors saw nothing")
    return 0


def cmd_grade(args: argparse.Namespace) -> int:
    from pglab.lab.classroom import grading, workspace
    from pglab.lab.trial import report as lab_report

    for path, flag in ((args.json, "--json"), (args.gradescope, "--gradescope"), (args.summary, "--summary")):
        lab_report.check_output_path(path, flag)
    spaces = [workspace.load(path) for path in grading.workspaces_in([Path(d) for d in args.dirs])]
    if not spaces:
        raise UserError(f"no exercise workspaces in {', '.join(args.dirs)}")
    if len(spaces) > 1 and (args.json or args.gradescope):
        raise UserError("--json and --gradescope grade one workspace; use --summary for several")
    console, stderr = Console(), Console(stderr=True)
    reports = []
    for space in spaces:
        lab_report.validated_request(space.entry_id, args.duration, 0, args.repeat)
        with _progress(stderr) as update:
            scale = laboptions.scale_for(args.scale, space.entry_id)
            reports.append(grading.grade(space, scale, args.duration, args.repeat, update, args.dsn,
                                         args.allow_write))
        _print_grade(reports[-1], console)
    if args.json:
        _write(args.json, json.dumps(reports[0], indent=2, default=str) + "\n")
    if args.gradescope:
        _write(args.gradescope, json.dumps(grading.gradescope(reports[0]), indent=2) + "\n")
    if args.summary:
        _write(args.summary, grading.summary_text(reports, markdown=not args.summary.endswith(".csv")))
    elif len(reports) > 1:
        console.print(grading.summary_text(reports, markdown=True))
    return 0 if all(report["verdict"] == "cured" for report in reports) else 1


def _print_grade(report: dict[str, Any], console: Console) -> None:
    console.print(f"[bold]{escape(report['exercise']['workspace'])}[/]: score {report['score']:g}"
                  f" of {10:g}")
    for line in report["feedback"]:
        console.print(f"  {escape(line)}")


def _write(path: str, text: str) -> None:
    partial = Path(path + ".partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


class _progress:
    """The lab's progress: a bar on a terminal, plain lines when output is piped."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=console,
                            transient=True)

    def __enter__(self) -> Any:
        from pglab.lab.cli.labcommand import progress_callback

        self.bar.__enter__()
        return progress_callback(self.bar, not self.console.is_terminal)

    def __exit__(self, *exc_info: object) -> None:
        self.bar.__exit__(None, None, None)


def _lab_options(parser: argparse.ArgumentParser, duration: float) -> None:
    laboptions.add_scale(parser)
    parser.add_argument("--duration", type=float, default=duration,
                        help=f"seconds of load per run (default {duration:g})")
    laboptions.add_server(parser)


def add_parsers(actions: Any) -> None:
    exercise = actions.add_parser(
        "exercise", help="write a workspace that hands a student a broken service to fix",
        description="Write an exercise workspace: README.md (the incident), solution.py (the code under "
                    "exercise, starting naive), migration.sql (empty) and .pglab/exercise.json.")
    exercise.add_argument("id", metavar="ID", nargs="?", help="the anti-pattern (id or code) the exercise is about")
    exercise.add_argument("dir", metavar="DIR", nargs="?", help="where to write it (default exercise-ID)")
    exercise.add_argument("--mystery", action="store_true", help="leave the anti-pattern's name out: symptoms only")
    exercise.add_argument("--all", action="store_true",
                          help="a course pack: one workspace per lab entry in DIR (pass DIR as the only argument)")
    exercise.set_defaults(handler=_exercise_arguments)
    observe = actions.add_parser("observe", help="run the workspace's current code under the exercise's load")
    observe.add_argument("dir", metavar="DIR", help="an exercise workspace")
    _lab_options(observe, 20.0)
    observe.set_defaults(handler=cmd_observe)
    hint = actions.add_parser("hint", help="the next hint (symptom, where to look, the idea of the fix)")
    hint.add_argument("dir", metavar="DIR", help="an exercise workspace")
    hint.set_defaults(handler=cmd_hint)
    grade = actions.add_parser(
        "grade", help="grade workspaces by measurement (exit 0 only when every one is cured)",
        description="Run the lab with the original code as the naive side and the workspace's code and "
                    "migration as the fixed side, under `pglab lab run`'s rules.")
    grade.add_argument("dirs", metavar="DIR", nargs="+", help="workspaces, or folders holding workspaces")
    _lab_options(grade, 30.0)
    grade.add_argument("--repeat", type=int, default=1, help="original/student pairs to run, alternately")
    grade.add_argument("--json", metavar="FILE", help="write `lab run`'s report plus the grade as JSON")
    grade.add_argument("--gradescope", metavar="FILE", help="write Gradescope's results.json")
    grade.add_argument("--summary", metavar="FILE", help="the teacher's summary of every grade (.csv or .md)")
    grade.set_defaults(handler=cmd_grade)


def _exercise_arguments(args: argparse.Namespace) -> int:
    """`--all DIR` takes its folder as the one positional argument."""
    if args.all:
        if args.dir:
            raise UserError("--all takes one folder: pglab lab exercise --all DIR")
        args.dir, args.id = args.id, None
    return cmd_exercise(args)
