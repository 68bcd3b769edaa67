"""Benchmark: the lab's anti-patterns at `medium` scale, naive against fixed, measured in one run.

    python tests/bench/lab_bench.py [--scale medium] [--duration 30] [--workers 0] [ID ...]

First it measures the load generator's own ceiling (one Locust process hammering the service's
trivial /health endpoint), so the rates below can be read against it. Then, per anti-pattern, it
runs `pglab lab run` and prints the naive and fixed p95, throughput, errors and lost updates, the
invariants the naive run broke and, for each, how much the fix improved it (naive / fixed; "-> 0"
when the fixed value is zero).
"""

from __future__ import annotations

import argparse
import time

from rich.console import Console
from rich.table import Table

from pglab.lab.cli.labcommand import LAB_SERVER_SETTINGS, Side, lab_ids, run_lab
from pglab.lab.postgres.launcher import EmbeddedPostgres
from pglab.lab.trial.invariants import Check
from pglab.lab.trial.loadrun import profile_path, run_load
from pglab.lab.trial.seed import SCALES, lab_dsn, seed
from pglab.lab.trial.service.process import running_service


def ceiling(seconds: float, workers: int) -> tuple[float, float]:
    """Requests/s one Locust set-up sustains against /health, and its p99 in ms."""
    with EmbeddedPostgres(settings=LAB_SERVER_SETTINGS) as server:
        seed(server.dsn(), SCALES["small"])
        with running_service(lab_dsn(server.dsn()), frozenset()) as url:
            result = run_load(profile_path("ceiling"), url, seconds, sample={}, workers=workers)
    hold = result.hold()
    return hold.rps, hold.p(0.99)


def improvement(naive: Check, fixed: Check) -> str:
    if fixed.value == 0:
        return f"{naive.value:g} -> 0"
    return f"{naive.value:g} -> {fixed.value:g} ({naive.value / fixed.value:.1f}x)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ids", nargs="*", help="anti-pattern ids (default: every one the lab knows)")
    parser.add_argument("--scale", default="medium", choices=tuple(SCALES))
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load per side")
    parser.add_argument("--workers", type=int, default=0)
    args = parser.parse_args()
    console = Console(width=180)

    for workers in (0, 2):
        rps, p99 = ceiling(15, workers)
        setup = "one Locust process" if workers == 0 else f"a Locust master and {workers} workers"
        console.print(f"load generator ceiling: {rps:,.0f} req/s from {setup} against /health (p99 {p99:.0f} ms)")

    table = Table(title=f"pglab lab, {args.scale} scale, {args.duration:g} s of load per side")
    for column in ("id", "p95 naive/fixed ms", "rps naive/fixed", "errors naive/fixed", "lost updates",
                   "broken by naive: naive -> fixed", "verdict", "seconds"):
        table.add_column(column)
    for entry_id in args.ids or lab_ids():
        began = time.perf_counter()
        report = run_lab(entry_id, args.scale, args.duration, args.workers)
        naive, fixed = report["_sides"]
        table.add_row(entry_id, f"{naive.p95_ms:,.0f} / {fixed.p95_ms:,.0f}", f"{naive.rps:,.1f} / {fixed.rps:,.1f}",
                      f"{_errors(naive)} / {_errors(fixed)}", f"{naive.lost_updates:,} / {fixed.lost_updates:,}",
                      "\n".join(f"{name}: {improvement(naive.invariants[name], fixed.invariants[name])}"
                                for name in naive.broken) or "none",
                      report["verdict"], f"{time.perf_counter() - began:.0f}")
        console.print(f"{entry_id}: {report['verdict']}")
    console.print(table)


def _errors(side: Side) -> str:
    return f"{side.failures:,} ({side.failures / side.requests:.1%})" if side.requests else "0"


if __name__ == "__main__":
    main()
