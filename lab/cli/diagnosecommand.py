"""`pglab diagnose --dsn DSN [--watch SECONDS] [--format text|json|sarif]`: the runtime detectors
against a live database, with the output formats and exit codes of `pglab check` (0 nothing
found, 1 findings, 2 usage or internal error).

Read-only: statistics views and the catalog are read, and plans come from plain EXPLAIN of
SELECTs inside READ ONLY transactions that are rolled back. What could not be checked (no
pg_stat_statements, no pg_read_all_stats) is reported as a diagnostic and the rest still runs.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from pglab.lab.core.errors import UserError
from pglab.lab.core.report import FORMATS, Diagnostic, render
from pglab.lab.postgres.launcher import redact
from pglab.lab.runtime.activity import ActivitySampler, ActivitySamples
from pglab.lab.runtime.diagnose import (
    TOP_STATEMENTS,
    diagnose_window,
    load_baseline,
    save_baseline,
    take_snapshot,
    window_text,
)


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {value!r}") from None
    if not 0 < seconds <= 3600:
        raise argparse.ArgumentTypeError(f"--watch takes 0 < SECONDS <= 3600, got {value}")
    return seconds


PROGRESS_EVERY_S = 5.0


def _wait(seconds: float, started: float, window: float, sampler: ActivitySampler) -> None:
    """Sample pg_stat_activity through part of the --watch window, saying how far it has got on
    stderr: nothing else is printed until the window ends, and a silent command looks hung. On a
    terminal one line is rewritten in place; elsewhere (CI logs, pipes) a plain line is printed
    every few seconds."""
    tty = sys.stderr.isatty()
    end, elapsed = time.perf_counter() + seconds, 0.0
    while (left := end - time.perf_counter()) > 0:
        sampler.run(min(left, 1.0 if tty else PROGRESS_EVERY_S))
        elapsed = min(time.perf_counter() - started, window)
        line = f"pglab diagnose: measuring, {elapsed:.0f} of {window:g} s"
        print(f"\r{line}" if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True)
    if tty and elapsed >= window:
        print(file=sys.stderr)


def cmd_diagnose(args: argparse.Namespace) -> int:
    if not args.dsn:
        raise UserError("diagnose needs a server: pass --dsn DSN or set PGLAB_DSN")
    started = time.perf_counter()
    before = None
    activity = ActivitySamples()  # none without --watch: the rules that need samples say so
    if args.watch:  # three snapshots: the window judged, and the one before it for trends
        with ActivitySampler(args.dsn) as sampler:
            first = take_snapshot(args.dsn)
            _wait(args.watch / 2, started, args.watch, sampler)
            before = take_snapshot(args.dsn, previous=first)
            _wait(args.watch / 2, started, args.watch, sampler)
        activity = sampler.result
    else:  # deltas since pglab's previous run against this server, when there was one
        before = load_baseline(args.dsn)
    result = diagnose_window(args.dsn, before, explain_top=not args.no_explain, top=args.top, activity=activity)
    findings, notes = result.findings, result.notes
    if result.window is not None:
        save_baseline(args.dsn, result.window.after)
    elapsed = time.perf_counter() - started
    window = window_text(result.window, args.watch)
    # "text" is what the text format prints under the findings ("window: ..."): every result says
    # what the counters cover, not only the clean one
    summary: dict[str, Any] = {"server": redact(args.dsn), "window_seconds": args.watch,
                               "seconds": round(elapsed, 3),
                               "window": {**(result.window.describe() if result.window else {}), "text": window}}
    render(findings, args.format, diagnostics=[Diagnostic(kind="not-checked", message=note) for note in notes],
           summary=summary, tool="pglab diagnose",
           clean_message=f"No runtime anti-patterns found ({window}, {elapsed:.2f}s).")
    return 1 if findings else 0


def add_parser(commands: Any) -> None:
    diagnose = commands.add_parser(
        "diagnose", help="find the anti-patterns in a running database (read-only)",
        description="Run every runtime detector once against a live server (plan rules over the costliest "
        "statements, pg_stat_* and catalog checks), or over a window with --watch. Read-only: no DDL, no DML, "
        "plain EXPLAIN only (nothing is executed); every statement has a lock and a statement timeout: a statement "
        "that could not be planned in time is reported as not checked, and a table another session holds in "
        "ACCESS EXCLUSIVE mode is left out with a note (a partial result, never a hang). "
        "Without --watch, counters are deltas since pglab's previous run against the same server, database and "
        "role: each run keeps its last snapshot of the counters on this machine (never on the server), in "
        "$XDG_STATE_HOME/pglab/baseline-*.json (~/.local/state/pglab without XDG_STATE_HOME), and the next run "
        "judges what changed since; the first run (or after deleting that file) judges totals since the "
        "statistics were last reset, which may still hold problems fixed long ago. Every output states the "
        "window its counters cover. "
        "Exit 0: nothing found; 1: findings; 2: usage or connection error.")
    diagnose.add_argument("--dsn", default=os.environ.get("PGLAB_DSN"), help="the server to inspect (or PGLAB_DSN)")
    diagnose.add_argument("--watch", type=_seconds, metavar="SECONDS",
                          help="measure over SECONDS: take snapshots at the start, middle and end and judge the "
                          "deltas over that window, sampling pg_stat_activity throughout (every 20 ms, to tie a "
                          "repeated statement to the query it follows in one session: n_plus_one runs only then); "
                          "nothing is printed on stdout until the window ends, progress goes to stderr")
    diagnose.add_argument("--format", choices=FORMATS, default="text", help="output format (default: text)")
    diagnose.add_argument("--top", type=int, default=TOP_STATEMENTS, metavar="N",
                          help=f"plan the N costliest SELECTs of pg_stat_statements (default {TOP_STATEMENTS})")
    diagnose.add_argument("--no-explain", action="store_true", help="statistics rules only, no plan rules")
    diagnose.set_defaults(handler=cmd_diagnose)
