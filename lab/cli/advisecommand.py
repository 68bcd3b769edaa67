"""`pglab advise-index`: arguments and output; the advice itself is `pglab.lab.runtime.advise`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from typing import Any

from pglab.lab.core.errors import UserError
from pglab.lab.core.sql import short
from pglab.lab.runtime.advise import MIN_SAVING, Advice, advise, require_select, top_statements


def _print(advice: Advice) -> None:
    print(short(advice.statement, 200))
    for note in advice.notes:
        print(f"  note: {note}")
    if not advice.candidates and not advice.notes:
        print("  no candidate index: the plan has no filter or sort an index could serve")
    for result in sorted(advice.candidates, key=lambda r: -r.saving):
        verdict = "keep" if result.kept else ("not used" if not result.used else "too small")
        if result.note:
            verdict = f"not measured ({result.note})"
        timing = ""
        if result.ms_before is not None and result.ms_after is not None:
            timing = f", {result.ms_before:,.2f} -> {result.ms_after:,.2f} ms"
        print(f"  {verdict:<9} {-result.saving:>5.0%}  cost {result.cost_before:,.1f} -> {result.cost_after:,.1f}"
              f"{timing}  {result.definition}")


def cmd_advise(args: argparse.Namespace) -> int:
    if not args.dsn:
        raise UserError("advise-index needs a server: pass --dsn DSN or set PGLAB_DSN")
    if args.statement:
        require_select(args.statement)  # before connecting: a usage error needs no server
    try:
        chosen = [args.statement] if args.statement else top_statements(args.dsn, args.top)
        report = [advise(args.dsn, statement, args.allow_ddl, args.min_saving, named=bool(args.statement))
                  for statement in chosen]
    except UserError:
        raise
    except Exception as error:  # a bug in pglab: still one line and exit 2
        print(f"pglab: internal error: {type(error).__name__}: {error}", file=sys.stderr)
        return 2
    if args.format == "json":
        print(json.dumps([{"statement": advice.statement, "analyzed": advice.analyzed, "notes": advice.notes,
                           "candidates": [{**asdict(r), "saving": round(r.saving, 4)} for r in advice.candidates]}
                          for advice in report], indent=2))
    else:
        for advice in report:
            _print(advice)
        if not report:
            print("No SELECT statements recorded in pg_stat_statements yet.")
    return 1 if any(result.kept for advice in report for result in advice.candidates) else 0


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "advise-index", help="propose indexes for a slow statement and measure each one",
        description="Propose candidate indexes from a SELECT's plan and validate each for real: with hypopg "
        "when installed, else by creating it in a transaction that is rolled back (needs --allow-ddl on a server "
        "pglab did not start). Keeps only candidates that save at least --min-saving of the cost. The SELECT is "
        "executed (EXPLAIN ANALYZE) only when you name it and every function it calls is free of side effects; "
        "otherwise, and for statements taken from pg_stat_statements, it is only planned, and a note says why. "
        "The session is read-only apart from the rolled-back index, with lock and statement timeouts.")
    parser.add_argument("statement", nargs="?", metavar="SQL",
                        help="the statement to speed up (default: the costliest SELECTs in pg_stat_statements)")
    parser.add_argument("--dsn", default=os.environ.get("PGLAB_DSN"), help="the server (or PGLAB_DSN)")
    parser.add_argument("--allow-ddl", action="store_true",
                        help="without hypopg: create each candidate in a transaction that is rolled back")
    parser.add_argument("--top", type=int, default=5, metavar="N", help="statements to advise on without SQL")
    parser.add_argument("--min-saving", type=float, default=MIN_SAVING, metavar="FRACTION",
                        help=f"keep a candidate only if it cuts the cost by this much (default {MIN_SAVING})")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.set_defaults(handler=cmd_advise)
